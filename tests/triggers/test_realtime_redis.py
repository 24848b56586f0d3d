"""Redis realtime triggers end to end, through the executor actor and the machine's Redis on
127.0.0.1:6379: one execution per message with the message in ``trigger.*``, none lost or
doubled when the trigger actor is killed mid-stream or the executor replaced, the broker
going down and up (through a ``TcpProxy``), enable/disable/delete, backpressure, the API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import skip_or_fail
from tests.triggers.tcpproxy import TcpProxy
from tests.triggers.helpers import search, trigger_context, wait_for

pytestmark = pytest.mark.ray

NS = "e2e.realtime"
REDIS_PORT = 6379


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        skip_or_fail(f"no Redis on 127.0.0.1:{REDIS_PORT}: {e}")
    yield client
    client.close()


@pytest.fixture
def rkey(redis_client: Any) -> Iterator[str]:
    """A fresh key name; every Redis key under it (and the trigger's own) removed after."""
    name = f"kray-test-{uuid.uuid4().hex[:10]}"
    yield name
    doomed = list(redis_client.scan_iter(f"*{name}*"))
    if doomed:
        redis_client.delete(*doomed)


def flow(flow_id: str, trigger: str, task: str | None = None) -> str:
    task = task or """  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body | json }}"
"""
    return f"""id: {flow_id}
namespace: {NS}
tasks:
{task}triggers:
{trigger}"""


def list_trigger(key: str, port: int = REDIS_PORT, extra: str = "") -> str:
    return f"""  - id: watch
    type: io.kestra.plugin.redis.list.RealtimeTrigger
    url: redis://127.0.0.1:{port}/0
    key: {key}
{extra}"""


def executions(ray: Any, executor: Any, flow_id: str) -> list[dict]:
    return search(ray, executor, NS, flow_id)


def context(ray: Any, executor: Any, flow_id: str) -> dict:
    return trigger_context(ray, executor, NS, flow_id)


def actor_alive(ray: Any, flow_id: str) -> bool:
    try:
        ray.get_actor(f"kray-trigger:{NS}/{flow_id}/watch", namespace="kray")
    except ValueError:
        return False
    return True


def running(ray: Any, executor: Any, flow_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: (c := context(ray, executor, flow_id))["status"] == "RUNNING" and c,
                    timeout=timeout, what=f"trigger of {flow_id} to be RUNNING")


def bodies(ray: Any, executor: Any, flow_id: str, count: int, timeout: float = 30.0
           ) -> list[Any]:
    """The ``trigger.body`` of the flow's executions, once there are ``count`` of them."""
    docs = wait_for(lambda: len(d := executions(ray, executor, flow_id)) >= count and d,
                    timeout=timeout, what=f"{count} executions of {flow_id}")
    return [d["trigger"]["body"] for d in docs]


def delete(ray: Any, executor: Any, flow_id: str) -> None:
    try:
        ray.get(executor.delete_flow.remote(NS, flow_id))
    except Exception:
        pass


# ---------------------------------------------------------------------------------- list
def test_list_one_execution_per_message(ray_session, executor, redis_client, rkey) -> None:
    from kray.runner import follow
    ray = ray_session
    fid = f"list_{rkey[-6:]}"
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey))))
    try:
        running(ray, executor, fid)
        redis_client.rpush(rkey, json.dumps({"n": 1}), "plain text", json.dumps([1, 2]))
        docs = wait_for(lambda: len(d := executions(ray, executor, fid)) >= 3 and d,
                        what="three executions")
        assert sorted(json.dumps(d["trigger"]["body"]) for d in docs) == \
            sorted(['{"n": 1}', '"plain text"', "[1, 2]"])
        doc = next(d for d in docs if d["trigger"]["body"] == {"n": 1})
        assert doc["trigger"]["key"] == rkey and doc["trigger"]["value"] == '{"n": 1}'
        assert follow(executor, doc["id"])["taskRuns"][0]["outputs"]["value"] == '{"n":1}'
        assert redis_client.llen(rkey) == 0
        assert not any(redis_client.lrange(k, 0, -1)
                       for k in redis_client.scan_iter(f"kray:trigger:*{rkey}:processing"))
        time.sleep(0.7)  # the position and last event are written in batches
        ctx = context(ray, executor, fid)
        assert ctx["status"] == "RUNNING" and ctx["events"] == 3
        assert ctx["lastEvent"]["id"] and ctx["lastError"] is None
        assert len(executions(ray, executor, fid)) == 3
    finally:
        delete(ray, executor, fid)
    wait_for(lambda: not actor_alive(ray, fid), what="the actor to go with its flow")


@pytest.mark.slow
def test_killed_actor_loses_and_doubles_nothing(ray_session, executor, redis_client,
                                                rkey) -> None:
    ray = ray_session
    fid = f"kill_{rkey[-6:]}"
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey))))
    try:
        running(ray, executor, fid)
        total = 300
        pipe = redis_client.pipeline()
        for i in range(total):
            pipe.rpush(rkey, json.dumps({"i": i}))
        pipe.execute()
        wait_for(lambda: len(executions(ray, executor, fid)) >= 20, what="some executions")
        handle = ray.get_actor(f"kray-trigger:{NS}/{fid}/watch", namespace="kray")
        pid = ray.get(handle.ping.remote())["pid"]
        ray.kill(handle, no_restart=False)  # Ray brings it back; it resumes on its own
        wait_for(lambda: not psutil.pid_exists(pid), what="the killed actor to exit")
        try:
            bodies(ray, executor, fid, total, timeout=90)
        except AssertionError:
            raise AssertionError(f"{len(executions(ray, executor, fid))} executions; trigger "
                                 f"{context(ray, executor, fid)}; {redis_client.llen(rkey)} "
                                 "items left") from None
        time.sleep(1.0)  # anything doubled would show up by now
        found = [d["trigger"]["body"]["i"] for d in executions(ray, executor, fid)]
        assert sorted(found) == list(range(total))
        assert ray.get(handle.ping.remote())["pid"] != pid
        assert redis_client.llen(rkey) == 0
    finally:
        delete(ray, executor, fid)


@pytest.mark.slow
def test_actor_killed_for_good_is_replaced_by_the_watchdog(ray_session, executor, redis_client,
                                                           rkey) -> None:
    """Killed with ``no_restart`` (Ray will not bring it back): the executor's watchdog
    notices within a few seconds, shows why, and a new actor consumes the rest, every
    message getting exactly one execution."""
    ray = ray_session
    fid = f"dead_{rkey[-6:]}"
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey))))
    try:
        running(ray, executor, fid)
        half = 100
        redis_client.rpush(rkey, *[json.dumps({"i": i}) for i in range(half)])
        wait_for(lambda: len(executions(ray, executor, fid)) >= 10, what="some executions")
        handle = ray.get_actor(f"kray-trigger:{NS}/{fid}/watch", namespace="kray")
        pid = ray.get(handle.ping.remote())["pid"]
        ray.kill(handle, no_restart=True)
        killed = time.monotonic()
        wait_for(lambda: not psutil.pid_exists(pid), what="the killed actor to exit")
        redis_client.rpush(rkey, *[json.dumps({"i": i}) for i in range(half, 2 * half)])
        ctx = wait_for(lambda: "died" in ((c := context(ray, executor, fid))["lastError"]
                                          or "") and c, timeout=15,
                       what="the watchdog to notice the dead actor")
        assert ctx["status"] in ("BACKOFF", "STARTING"), ctx
        assert "a new one starts in" in ctx["lastError"]
        bodies(ray, executor, fid, 2 * half, timeout=20)
        assert time.monotonic() - killed < 20
        time.sleep(1.0)  # anything doubled would show up by now
        found = [d["trigger"]["body"]["i"] for d in executions(ray, executor, fid)]
        assert sorted(found) == list(range(2 * half))
        new = ray.get_actor(f"kray-trigger:{NS}/{fid}/watch", namespace="kray")
        assert ray.get(new.ping.remote())["pid"] != pid
        ctx = running(ray, executor, fid)
        assert ctx["lastError"] is None and redis_client.llen(rkey) == 0
    finally:
        delete(ray, executor, fid)


def test_disable_keeps_messages_waiting_then_enable(ray_session, executor, redis_client,
                                                    rkey) -> None:
    ray = ray_session
    fid = f"onoff_{rkey[-6:]}"
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey))))
    try:
        running(ray, executor, fid)
        view = ray.get(executor.set_trigger_enabled.remote(NS, fid, "watch", False))
        assert view["triggerContext"]["disabled"] is True
        wait_for(lambda: not actor_alive(ray, fid), what="the actor to stop")
        assert context(ray, executor, fid)["status"] == "STOPPED"
        redis_client.rpush(rkey, "a", "b")
        time.sleep(1.0)
        assert redis_client.llen(rkey) == 2 and executions(ray, executor, fid) == []
        ray.get(executor.set_trigger_enabled.remote(NS, fid, "watch", True))
        assert sorted(bodies(ray, executor, fid, 2)) == ["a", "b"]
        assert actor_alive(ray, fid) and redis_client.llen(rkey) == 0
        # The flow disabled in its source stops it too; deleting the flow removes it.
        ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey)).replace(
            "tasks:", "disabled: true\ntasks:", 1)))
        wait_for(lambda: not actor_alive(ray, fid), what="the actor of a disabled flow to stop")
    finally:
        delete(ray, executor, fid)
    wait_for(lambda: not actor_alive(ray, fid), what="the actor to go with its flow")


def test_changed_definition_replaces_the_actor(ray_session, executor, redis_client,
                                               rkey) -> None:
    ray = ray_session
    fid = f"chg_{rkey[-6:]}"
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey))))
    try:
        running(ray, executor, fid)
        handle = ray.get_actor(f"kray-trigger:{NS}/{fid}/watch", namespace="kray")
        first = ray.get(handle.ping.remote())["pid"]
        other = rkey + "-b"
        ray.get(executor.deploy.remote(flow(fid, list_trigger(other))))

        def moved() -> bool:
            try:
                h = ray.get_actor(f"kray-trigger:{NS}/{fid}/watch", namespace="kray")
                return ray.get(h.ping.remote(), timeout=5)["pid"] != first
            except Exception:
                return False
        wait_for(moved, what="a new actor")
        running(ray, executor, fid)
        redis_client.rpush(other, "from b")
        assert bodies(ray, executor, fid, 1) == ["from b"]
    finally:
        delete(ray, executor, fid)


def test_broker_down_and_up(ray_session, executor, redis_client, rkey) -> None:
    ray = ray_session
    fid = f"proxy_{rkey[-6:]}"
    with TcpProxy(REDIS_PORT) as proxy:
        ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey, proxy.port))))
        try:
            running(ray, executor, fid)
            redis_client.rpush(rkey, "before")
            assert bodies(ray, executor, fid, 1) == ["before"]
            proxy.cut()
            ctx = wait_for(lambda: (c := context(ray, executor, fid))["status"] == "BACKOFF"
                           and c, what="BACKOFF")
            assert "redis" in ctx["lastError"]
            redis_client.rpush(rkey, "during 1", "during 2")  # straight to Redis
            time.sleep(0.5)
            proxy.restore()
            running(ray, executor, fid, timeout=45)
            assert sorted(bodies(ray, executor, fid, 3, timeout=45)) == \
                ["before", "during 1", "during 2"]
            assert context(ray, executor, fid)["lastError"] is None
        finally:
            delete(ray, executor, fid)


# ---------------------------------------------------------------------------------- stream
def stream_trigger(key: str, extra: str = "") -> str:
    return f"""  - id: watch
    type: kray.redis.stream.RealtimeTrigger
    url: redis://127.0.0.1:{REDIS_PORT}/0
    key: {key}
    group: g-{key}
    startId: "0"
{extra}"""


def own_executor(ray: Any, data_dir: Path) -> Any:
    from kray.executor import ExecutorService
    actor = ray.remote(ExecutorService).options(num_cpus=0, max_concurrency=1000).remote(
        {"data_dir": str(data_dir)})
    ray.get(actor.ping.remote())
    return actor


@pytest.mark.slow
def test_stream_group_and_positions_survive_an_executor_restart(ray_session, redis_client,
                                                                 rkey, tmp_path: Path) -> None:
    ray = ray_session
    fid = f"stream_{rkey[-6:]}"
    redis_client.xadd(rkey, {"n": "0", "doc": json.dumps({"a": 1})})  # before: startId 0
    first = own_executor(ray, tmp_path)
    ray.get(first.deploy.remote(flow(fid, stream_trigger(rkey))))
    running(ray, first, fid)
    for n in range(1, 5):
        redis_client.xadd(rkey, {"n": str(n)})
    found = bodies(ray, first, fid, 5)
    assert sorted(b["n"] for b in found) == [0, 1, 2, 3, 4]  # "0" parses as JSON: 0
    assert {"n": 0, "doc": {"a": 1}} in found
    doc = executions(ray, first, fid)[0]
    assert doc["trigger"]["key"] == rkey and "-" in doc["trigger"]["id"]
    pid = ray.get(first.ping.remote())["pid"]
    ray.kill(first)  # its trigger actors die with it
    wait_for(lambda: not psutil.pid_exists(pid), what="the executor to exit")
    for n in range(5, 8):
        redis_client.xadd(rkey, {"n": str(n)})  # while no executor runs
    second = own_executor(ray, tmp_path)
    try:
        found = bodies(ray, second, fid, 8)
        time.sleep(1.0)
        found = [d["trigger"]["body"]["n"] for d in executions(ray, second, fid)]
        assert sorted(found) == list(range(8))
        info = redis_client.xinfo_groups(rkey)
        assert info[0]["pending"] == 0
    finally:
        try:
            ray.get(second.delete_flow.remote(NS, fid))
        finally:
            ray.kill(second)


# ---------------------------------------------------------------------------------- pub/sub
def test_pubsub_channel_and_pattern(ray_session, executor, redis_client, rkey) -> None:
    ray = ray_session
    fid = f"pubsub_{rkey[-6:]}"
    trigger = f"""  - id: watch
    type: kray.redis.pubsub.RealtimeTrigger
    url: redis://127.0.0.1:{REDIS_PORT}/0
    channel: {rkey}
    pattern: "{rkey}.p.*"
    serdeType: JSON
"""
    ray.get(executor.deploy.remote(flow(fid, trigger)))
    try:
        running(ray, executor, fid)
        time.sleep(0.3)  # subscribed before RUNNING; a little slack for the broker
        redis_client.publish(rkey, json.dumps({"x": 1}))
        redis_client.publish(f"{rkey}.p.one", "hello")
        docs = wait_for(lambda: len(d := executions(ray, executor, fid)) >= 2 and d,
                        what="two executions")
        by_channel = {d["trigger"]["channel"]: d["trigger"] for d in docs}
        assert by_channel[rkey]["body"] == {"x": 1} and by_channel[rkey]["value"] == {"x": 1}
        assert by_channel[f"{rkey}.p.one"]["body"] == "hello"
        assert by_channel[f"{rkey}.p.one"]["pattern"] == f"{rkey}.p.*"
    finally:
        delete(ray, executor, fid)


# ---------------------------------------------------------------------------------- backpressure
def test_backpressure_keeps_the_rest_in_redis(ray_session, executor, redis_client,
                                              rkey) -> None:
    ray = ray_session
    fid = f"bp_{rkey[-6:]}"
    limit, total = 5, 40
    sleep = """  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
"""
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey, extra="    maxInFlight: 5\n"),
                                        sleep)))
    try:
        running(ray, executor, fid)
        redis_client.rpush(rkey, *[str(i) for i in range(total)])
        paused_seen = waiting_seen = False
        peak = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            docs = executions(ray, executor, fid)
            live = sum(1 for d in docs if d["state"] not in
                       ("SUCCESS", "FAILED", "KILLED", "WARNING", "CANCELLED"))
            peak = max(peak, live)
            ctx = context(ray, executor, fid)
            paused_seen |= ctx["status"] == "PAUSED"
            waiting_seen |= redis_client.llen(rkey) > total // 2
            if len(docs) == total and live == 0:
                break
            time.sleep(0.05)
        assert len(executions(ray, executor, fid)) == total
        assert peak <= limit, peak
        assert paused_seen and waiting_seen
    finally:
        delete(ray, executor, fid)


@pytest.mark.slow
def test_burst_of_2000_stays_under_max_in_flight(ray_session, executor, redis_client,
                                                 rkey) -> None:
    ray = ray_session
    fid = f"burst_{rkey[-6:]}"
    total, limit = 2000, 100
    sleep = """  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
"""
    ray.get(executor.deploy.remote(flow(fid, list_trigger(rkey), sleep)))
    try:
        running(ray, executor, fid)
        pipe = redis_client.pipeline()
        for i in range(total):
            pipe.rpush(rkey, str(i))
        pipe.execute()
        peak = 0
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            peak = max(peak, context(ray, executor, fid)["inFlight"])
            if redis_client.llen(rkey) == 0 and context(ray, executor, fid)["inFlight"] == 0:
                break
            time.sleep(0.1)
        assert peak <= limit
        docs = wait_for(lambda: len(d := executions(ray, executor, fid)) >= total and d)
        assert sorted(int(d["trigger"]["body"]) for d in docs) == list(range(total))
    finally:
        delete(ray, executor, fid)


# ---------------------------------------------------------------------------------- API
def test_api_shows_the_status(live_server, http, redis_client, rkey) -> None:
    from tests.api.conftest import deploy
    ns = f"t{uuid.uuid4().hex[:8]}"
    source = flow("shown", list_trigger(rkey)).replace(f"namespace: {NS}", f"namespace: {ns}")
    deploy(http, source)
    try:
        def status() -> dict | None:
            r = http.get("/api/v1/triggers/search", params={"namespace": ns})
            assert r.status_code == 200, r.text
            (found,) = r.json()["results"]
            ctx = found["triggerContext"]
            return ctx if ctx["status"] == "RUNNING" else None
        ctx = wait_for(status, what="RUNNING in the API")
        assert ctx["events"] == 0 and ctx["lastError"] is None
        redis_client.rpush(rkey, "x")
        ctx = wait_for(lambda: (c := status()) and c["events"] == 1 and c,
                       what="the event in the API")
        assert ctx["lastEvent"]["id"] and ctx["executionId"]
    finally:
        http.delete(f"/api/v1/flows/{ns}/shown")
