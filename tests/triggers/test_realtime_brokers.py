"""MQTT, NATS (core and JetStream) and AMQP realtime triggers end to end, through the
executor actor, its trigger actors and the machine's brokers on 127.0.0.1: one execution per
message with the message in ``trigger.*``; none lost or doubled when the trigger actor is
killed mid-stream (``slow``)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from kray.triggers.sources.brokerutil import trigger_name
from tests.conftest import skip_or_fail
from tests.triggers.tcpproxy import TcpProxy
from tests.triggers.helpers import deployed, search, trigger_context, wait_for

pytestmark = pytest.mark.ray

NS = "e2e.brokers"
MQTT_PORT, NATS_PORT, AMQP_PORT = 1883, 4222, 5672


def need(port: int, name: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        skip_or_fail(f"{name} is not listening on 127.0.0.1:{port}")


def arun(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def flow(flow_id: str, trigger: str) -> str:
    return f"""id: {flow_id}
namespace: {NS}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.body | json }}}}"
triggers:
  - id: watch
{trigger}"""


def executions(ray: Any, executor: Any, flow_id: str) -> list[dict]:
    return search(ray, executor, NS, flow_id)


def context(ray: Any, executor: Any, flow_id: str) -> dict:
    return trigger_context(ray, executor, NS, flow_id)


def running(ray: Any, executor: Any, flow_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: (c := context(ray, executor, flow_id))["status"] ==
                    "RUNNING" and c, timeout=timeout, what=f"trigger of {flow_id} RUNNING")


def triggers_of(ray: Any, executor: Any, flow_id: str, count: int, timeout: float = 30.0
                ) -> list[dict]:
    """The ``trigger.*`` of the flow's executions, once there are ``count`` of them."""
    docs = wait_for(lambda: len(d := executions(ray, executor, flow_id)) >= count and d,
                    timeout=timeout, what=f"{count} executions of {flow_id}")
    return [d["trigger"] for d in docs]


@contextmanager
def running_flow(ray: Any, executor: Any, flow_id: str, trigger: str) -> Iterator[dict]:
    with deployed(ray, executor, NS, flow_id, flow(flow_id, trigger)) as ctx:
        yield ctx


def kill_mid_stream(ray: Any, executor: Any, flow_id: str, total: int) -> None:
    """Once some of the ``total`` messages have their execution, kill the trigger actor (Ray
    restarts it; it resumes on its own) and wait until its process is gone; checks that it
    was killed mid-stream indeed."""
    wait_for(lambda: len(executions(ray, executor, flow_id)) >= 10, what="some executions")
    handle = ray.get_actor(f"kray-trigger:{NS}/{flow_id}/watch", namespace="kray")
    pid = ray.get(handle.ping.remote())["pid"]
    ray.kill(handle, no_restart=False)
    seen = len(executions(ray, executor, flow_id))
    print(f"killed the trigger actor of {flow_id} after {seen}/{total} executions")
    assert seen < total, "not mid-stream: publish more"
    wait_for(lambda: not psutil.pid_exists(pid), what="the killed actor to exit")


def exactly_once(ray: Any, executor: Any, fid: str, total: int) -> None:
    """Every one of ``total`` numbered messages started exactly one execution."""
    try:
        triggers_of(ray, executor, fid, total, timeout=90)
    except AssertionError:
        ctx = context(ray, executor, fid)
        raise AssertionError(f"{len(executions(ray, executor, fid))}/{total} executions; "
                             f"trigger {ctx}") from None
    time.sleep(1.5)  # anything doubled would show up by now
    found = sorted(t["body"]["i"] for t in (d["trigger"] for d in
                                             executions(ray, executor, fid)))
    assert found == list(range(total))


# ---------------------------------------------------------------------------------- MQTT
@pytest.fixture
def mqtt_flow() -> Iterator[tuple[str, str]]:
    """(flow id, topic); the trigger's persistent session is removed at the end."""
    need(MQTT_PORT, "Mosquitto")
    tag = uuid.uuid4().hex[:8]
    fid = f"mqtt_{tag}"
    yield fid, f"kray-e2e/{tag}"

    async def forget() -> None:
        import aiomqtt
        client_id = trigger_name({"namespace": NS, "flow_id": fid, "trigger_id": "watch"})
        async with aiomqtt.Client("127.0.0.1", MQTT_PORT, identifier=client_id,
                                  protocol=aiomqtt.ProtocolVersion.V311, clean_session=True):
            pass
    arun(forget())


def mqtt_trigger(topic: str, extra: str = "") -> str:
    return f"""    type: io.kestra.plugin.mqtt.RealtimeTrigger
    server: tcp://127.0.0.1:{MQTT_PORT}
    topic: {topic}
{extra}"""


async def mqtt_publish(topic: str, payloads: list[bytes]) -> None:
    import aiomqtt
    async with aiomqtt.Client("127.0.0.1", MQTT_PORT) as client:
        for p in payloads:
            await client.publish(topic, p, qos=1)


def test_mqtt_one_execution_per_message(ray_session, executor, mqtt_flow) -> None:
    ray, (fid, topic) = ray_session, mqtt_flow
    with running_flow(ray, executor, fid, mqtt_trigger(topic)):
        arun(mqtt_publish(topic, [b'{"n": 1}', b"plain", b"plain"]))
        found = triggers_of(ray, executor, fid, 3)
        assert sorted(str(t["body"]) for t in found) == ["plain", "plain", "{'n': 1}"]
        assert {t["topic"] for t in found} == {topic} and found[0]["payload"] == found[0]["body"]
        time.sleep(0.5)
        assert len(executions(ray, executor, fid)) == 3


def test_mqtt_broker_down_and_up(ray_session, executor, mqtt_flow) -> None:
    ray, (fid, topic) = ray_session, mqtt_flow
    with TcpProxy(MQTT_PORT) as proxy:
        trigger = mqtt_trigger(topic).replace(f":{MQTT_PORT}", f":{proxy.port}")
        with running_flow(ray, executor, fid, trigger):
            arun(mqtt_publish(topic, [b'{"i": 0}']))
            triggers_of(ray, executor, fid, 1)
            proxy.cut()
            ctx = wait_for(lambda: (c := context(ray, executor, fid))["status"] ==
                           "BACKOFF" and c, what="BACKOFF")
            assert "MQTT" in ctx["lastError"]
            arun(mqtt_publish(topic, [b'{"i": 1}', b'{"i": 2}']))  # kept in its session
            proxy.restore()
            running(ray, executor, fid, timeout=45)
            exactly_once(ray, executor, fid, 3)


@pytest.mark.slow
def test_mqtt_killed_actor_loses_and_doubles_nothing(ray_session, executor, mqtt_flow) -> None:
    ray, (fid, topic) = ray_session, mqtt_flow
    total = 300
    with running_flow(ray, executor, fid, mqtt_trigger(topic)):
        arun(mqtt_publish(topic, [b'{"i": %d}' % i for i in range(total)]))
        kill_mid_stream(ray, executor, fid, total)
        exactly_once(ray, executor, fid, total)


@pytest.mark.slow
def test_mqtt_session_and_position_survive_an_executor_restart(ray_session, mqtt_flow,
                                                               tmp_path: Path) -> None:
    """The executor (and its trigger actors) go away: what is published meanwhile waits in the
    trigger's MQTT session, and the new executor's trigger resumes from the persisted epoch."""
    from kray.executor import ExecutorService
    ray, (fid, topic) = ray_session, mqtt_flow

    def own_executor() -> Any:
        actor = ray.remote(ExecutorService).options(num_cpus=0, max_concurrency=1000).remote(
            {"data_dir": str(tmp_path)})
        ray.get(actor.ping.remote())
        return actor

    first = own_executor()
    ray.get(first.deploy.remote(flow(fid, mqtt_trigger(topic))))
    running(ray, first, fid)
    arun(mqtt_publish(topic, [b'{"i": %d}' % i for i in range(5)]))
    triggers_of(ray, first, fid, 5)
    time.sleep(0.7)  # the position is written in batches
    epoch = context(ray, first, fid)["position"]["epoch"]
    assert epoch >= 1
    pid = ray.get(first.ping.remote())["pid"]
    ray.kill(first)  # its trigger actors die with it
    wait_for(lambda: not psutil.pid_exists(pid), what="the executor to exit")
    arun(mqtt_publish(topic, [b'{"i": %d}' % i for i in range(5, 10)]))  # nobody listening
    second = own_executor()
    try:
        exactly_once(ray, second, fid, 10)
        assert context(ray, second, fid)["position"]["epoch"] > epoch
    finally:
        try:
            ray.get(second.delete_flow.remote(NS, fid))
        finally:
            ray.kill(second)


# ---------------------------------------------------------------------------------- NATS
@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str]]:
    """(stream, subject): a JetStream stream of its own, deleted at the end."""
    need(NATS_PORT, "NATS")
    import nats
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"KRAYE2E_{tag}", f"kray.e2e.{tag}"

    async def make() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            await nc.jetstream().add_stream(name=stream, subjects=[subject])
        finally:
            await nc.close()

    try:
        arun(make())
    except Exception as e:  # noqa: BLE001
        skip_or_fail(f"NATS JetStream unavailable: {e}")
    yield stream, subject

    async def drop() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()
    arun(drop())


async def nats_publish(subject: str, payloads: list[bytes], js: bool) -> None:
    import nats
    nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
    try:
        for p in payloads:
            if js:
                await nc.jetstream().publish(subject, p)
            else:
                await nc.publish(subject, p)
        await nc.flush()
    finally:
        await nc.close()


def nats_trigger(subject: str, extra: str = "") -> str:
    return f"""    type: kray.nats.RealtimeTrigger
    url: nats://127.0.0.1:{NATS_PORT}
    subject: {subject}
{extra}"""


def test_nats_core_one_execution_per_message(ray_session, executor) -> None:
    need(NATS_PORT, "NATS")
    ray, tag = ray_session, uuid.uuid4().hex[:8]
    fid, subject = f"natscore_{tag}", f"kray.e2e.core.{tag}"
    with running_flow(ray, executor, fid, nats_trigger(subject)):
        time.sleep(0.2)
        arun(nats_publish(subject, [b'{"k": "v"}', b"two"], js=False))
        found = triggers_of(ray, executor, fid, 2)
        assert sorted(str(t["body"]) for t in found) == ["two", "{'k': 'v'}"]
        assert found[0]["subject"] == subject


def test_jetstream_one_execution_per_message(ray_session, executor, nats_stream) -> None:
    ray, (stream, subject) = ray_session, nats_stream
    fid = f"js_{stream[-8:]}"
    arun(nats_publish(subject, [b'{"before": true}'], js=True))  # deliverPolicy All
    trigger = f"""    type: io.kestra.plugin.nats.core.RealtimeTrigger
    url: nats://127.0.0.1:{NATS_PORT}
    subject: {subject}
    durableId: d{stream[-8:]}
    deliverPolicy: All
"""
    with running_flow(ray, executor, fid, trigger):
        arun(nats_publish(subject, [b'{"n": 2}', b"three"], js=True))
        found = triggers_of(ray, executor, fid, 3)
        assert [t["sequence"] for t in found] == [1, 2, 3]
        assert [t["body"] for t in found] == [{"before": True}, {"n": 2}, "three"]
        assert found[0]["stream"] == stream and found[0]["data"] == {"before": True}
        time.sleep(0.5)
        assert len(executions(ray, executor, fid)) == 3


@pytest.mark.slow
def test_jetstream_killed_actor_loses_and_doubles_nothing(ray_session, executor,
                                                          nats_stream) -> None:
    ray, (stream, subject) = ray_session, nats_stream
    fid, total = f"js_chaos_{stream[-8:]}", 300
    extra = f"    stream: {stream}\n    ackWait: PT2S\n"
    with running_flow(ray, executor, fid, nats_trigger(subject, extra)):
        arun(nats_publish(subject, [b'{"i": %d}' % i for i in range(total)], js=True))
        kill_mid_stream(ray, executor, fid, total)
        exactly_once(ray, executor, fid, total)


# ---------------------------------------------------------------------------------- AMQP
@pytest.fixture
def amqp_queue() -> Iterator[str]:
    need(AMQP_PORT, "RabbitMQ")
    name = f"kray-e2e-{uuid.uuid4().hex[:8]}"
    yield name

    async def drop() -> None:
        import aio_pika
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/")
        try:
            await (await conn.channel()).queue_delete(name)
        finally:
            await conn.close()
    arun(drop())


async def amqp_publish(queue: str, bodies: list[bytes], ids: list[str]) -> None:
    import aio_pika
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/")
    try:
        channel = await conn.channel()
        await channel.declare_queue(queue, durable=True)
        for body, mid in zip(bodies, ids, strict=True):
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=mid, headers={"src": "e2e"}),
                routing_key=queue)
    finally:
        await conn.close()


def amqp_trigger(queue: str) -> str:
    return f"""    type: io.kestra.plugin.amqp.RealtimeTrigger
    host: 127.0.0.1
    port: {AMQP_PORT}
    username: guest
    password: guest
    queue: "{queue}"
    declareQueue: true
"""


def test_amqp_one_execution_per_message(ray_session, executor, amqp_queue) -> None:
    ray = ray_session
    fid = amqp_queue  # the queue is named after the flow: properties are rendered
    with running_flow(ray, executor, fid, amqp_trigger("{{ flow.id }}")):
        arun(amqp_publish(amqp_queue, [b'{"a": 1}', b"two"], ["m1", "m2"]))
        found = triggers_of(ray, executor, fid, 2)
        by_id = {t["messageId"]: t for t in found}
        assert by_id["m1"]["body"] == {"a": 1} and by_id["m2"]["data"] == "two"
        assert by_id["m1"]["headers"] == {"src": "e2e"}
        assert by_id["m1"]["routingKey"] == amqp_queue
        # The same message_id again (a publisher's retry): no second execution.
        arun(amqp_publish(amqp_queue, [b'{"a": 1}'], ["m1"]))
        time.sleep(1.0)
        assert len(executions(ray, executor, fid)) == 2


@pytest.mark.slow
def test_amqp_killed_actor_loses_and_doubles_nothing(ray_session, executor, amqp_queue) -> None:
    ray = ray_session
    fid, total = f"amqp_chaos_{amqp_queue[-8:]}", 300
    with running_flow(ray, executor, fid, amqp_trigger(amqp_queue)):
        arun(amqp_publish(amqp_queue, [b'{"i": %d}' % i for i in range(total)],
                          [f"k{i}" for i in range(total)]))
        kill_mid_stream(ray, executor, fid, total)
        exactly_once(ray, executor, fid, total)


# ---------------------------------------------------------------------------------- secrets
def secret_trigger(queue: str, password: str, declare: bool = True) -> str:
    return f"""    type: io.kestra.plugin.amqp.RealtimeTrigger
    host: 127.0.0.1
    port: {AMQP_PORT}
    username: guest
    password: "{password}"
    queue: "{queue}"
    declareQueue: {str(declare).lower()}
"""


def ray_logs(ray: Any) -> str:
    """Every log file of the session's Ray (the executor's and the trigger actors' too)."""
    time.sleep(1.0)  # what was just logged reaches its file
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*")
                     if p.is_file() and p.suffix in (".out", ".err", ".log"))


def test_amqp_password_from_a_secret(ray_session, executor, amqp_queue) -> None:
    ray = ray_session
    fid = f"amqpsecret_{amqp_queue[-8:]}"
    template = "{{ secret('AMQP_PASSWORD') }}"
    with running_flow(ray, executor, fid, secret_trigger(amqp_queue, template)):
        arun(amqp_publish(amqp_queue, [b'{"a": 1}'], ["s1"]))
        (found,) = triggers_of(ray, executor, fid, 1)
        assert found["body"] == {"a": 1}
        view = ray.get(executor.trigger.remote(NS, fid, "watch"))
        assert view["abstractTrigger"]["password"] == template  # shown as written
        assert view["triggerContext"]["lastError"] is None


@pytest.mark.parametrize("case", ["wrong password", "secret in the error"])
def test_amqp_secrets_never_shown_in_errors_views_or_logs(ray_session, executor, amqp_queue,
                                                          case: str) -> None:
    """A refused secret password, and a secret that the broker's own error quotes (a queue
    named by a secret that does not exist): BACKOFF with the error, the secret in neither
    the trigger's status, its API view nor any log of the Ray session."""
    from tests.conftest import AMQP_WRONG_PASSWORD, SECRET_TRIGGER
    ray = ray_session
    fid = f"amqpbad_{amqp_queue[-8:]}"
    if case == "wrong password":
        secret, trigger = AMQP_WRONG_PASSWORD, secret_trigger(
            amqp_queue, "{{ secret('AMQP_WRONG_PASSWORD') }}")
    else:
        secret, trigger = SECRET_TRIGGER, secret_trigger(
            "{{ secret('E2E_TRIGGER') }}", "{{ secret('AMQP_PASSWORD') }}", declare=False)
    ray.get(executor.deploy.remote(flow(fid, trigger)))
    try:
        ctx = wait_for(lambda: (c := context(ray, executor, fid))["status"] ==
                       "BACKOFF" and c["lastError"] and c, what="BACKOFF with its error")
        error = ctx["lastError"]
        assert "AMQP 127.0.0.1:5672" in error and "retrying in" in error, error
        if case == "wrong password":
            assert "ACCESS_REFUSED" in error, error
        else:
            assert "NOT_FOUND" in error and "******" in error, error
        assert secret not in error
        shown = json.dumps([ray.get(executor.trigger.remote(NS, fid, "watch")),
                            ray.get(executor.triggers.remote(namespace=NS))])
        assert secret not in shown and fid in shown
        assert executions(ray, executor, fid) == []
        assert secret not in ray_logs(ray)
    finally:
        try:
            ray.get(executor.delete_flow.remote(NS, fid))
        except Exception:
            pass

