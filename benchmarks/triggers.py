"""Realtime triggers: latency from publish to execution start, and sustained events/s.

    python -m benchmarks.triggers [--events 1000] [--latency 50] [--types redis-list,mqtt]
                                  [--json]
    python -m benchmarks.triggers --backpressure 10000 [--max-in-flight 100] [--json]

For every realtime trigger type whose source is registered (``source_types()``) and whose broker
answers on 127.0.0.1, with a 1-task flow (``Return``) on an embedded Ray and an executor of
its own (a fresh data folder, state persisted in DuckDB as usual):

- **latency**: after 10 warm-up messages, ``--latency`` messages published one at a time, 50 ms apart, each carrying its
  publish time; latency = the execution's first RUNNING state date minus that time (both
  clocks are this machine's). p50 / p95 / max.
- **throughput**: ``--events`` messages published as fast as the client can, then the time
  from the first publish until every execution exists (executions created per second), and
  until every one has ended. The trigger's ``maxInFlight`` is raised to the event count for
  this phase, so that creation is not paced by completions (with the default 100, the rate is
  that of the executions' own completion).

The table lists every type, with the reason a type was skipped (source not registered, broker
down). Targets (issue 8): p50 under 50 ms and 200 events/s.

**Backpressure** (``--backpressure N``, instead of the above): N messages pushed at once to a
Redis list whose trigger has ``maxInFlight: 100`` and a flow whose task sleeps 50 ms. Every
~0.2 s it samples the trigger's ``inFlight`` (its executions not terminal yet), the list's
length left in Redis and the executor process's RSS (psutil, by the pid ``executor.ping``
gives). It reports the peak in-flight, the RSS before and at its peak, the time until all N
executions ended, and whether every message got exactly one execution (distinct bodies).
The issue's claim: the trigger stops pulling while ``maxInFlight`` of its executions wait, the
rest waits in the broker, so neither memory nor the executor grows with the burst.

**Baseline**: raw Ray on the same Redis list, what a hand-written consumer would do: one Ray
actor ``BLPOP``s the list and submits one Ray task per message (no execution record, no
durability, no dedupe, no ack after durable). Its latency is the task's start minus the publish
time, its "created" the time until every task was submitted, its "ended" until every task
returned; the ratios printed under the table compare each trigger with it.
No peer is measured: Kestra's realtime triggers need its Java server (not installable with
pip here), and Airflow, Prefect and Dagster have no per-message realtime triggers of this kind
(their sensors and event watchers poll, with seconds of latency by design).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

NS = "bench.triggers"
TARGET_P50_MS = 50.0
TARGET_RATE = 200.0
WARMUP = 10  # messages through each trigger before measuring
TASK = """  - id: one
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body | json | length }}"
"""

Publish = Callable[[str, list[bytes]], Awaitable[None]]


@dataclass
class Case:
    name: str
    type: str  # the trigger type (must be in source_types())
    port: int  # the broker's, on 127.0.0.1
    properties: Callable[[str], str]  # YAML lines of the trigger's own properties, for a key
    publish: Publish
    setup: Callable[[str], Awaitable[None]] | None = None
    cleanup: Callable[[str], Awaitable[None]] | None = None


# ---------------------------------------------------------------------------------- publishers
async def _redis_list(key: str, payloads: list[bytes]) -> None:
    import redis.asyncio as aioredis
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        for i in range(0, len(payloads), 500):
            await client.rpush(key, *payloads[i:i + 500])
    finally:
        await client.aclose()


async def _redis_stream(key: str, payloads: list[bytes]) -> None:
    import redis.asyncio as aioredis
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        pipe = client.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(key, {"data": p})
        await pipe.execute()
    finally:
        await client.aclose()


async def _redis_pubsub(key: str, payloads: list[bytes]) -> None:
    import redis.asyncio as aioredis
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        pipe = client.pipeline(transaction=False)
        for p in payloads:
            pipe.publish(key, p)
        await pipe.execute()
    finally:
        await client.aclose()


async def _redis_cleanup(key: str) -> None:
    import redis.asyncio as aioredis
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        doomed = [k async for k in client.scan_iter(f"*{key}*")]
        if doomed:
            await client.delete(*doomed)
    finally:
        await client.aclose()


async def _mqtt(key: str, payloads: list[bytes]) -> None:
    import aiomqtt
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for p in payloads:
            await client.publish(key, p, qos=1)


async def _nats(key: str, payloads: list[bytes]) -> None:
    import nats
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        for p in payloads:
            await nc.publish(key, p)
        await nc.flush()
    finally:
        await nc.close()


async def _jetstream_setup(key: str) -> None:
    import nats
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().add_stream(name=key, subjects=[key])
    finally:
        await nc.close()


async def _jetstream(key: str, payloads: list[bytes]) -> None:
    import nats
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = nc.jetstream()
        for i in range(0, len(payloads), 200):
            await asyncio.gather(*(js.publish(key, p) for p in payloads[i:i + 200]))
    finally:
        await nc.close()


async def _jetstream_cleanup(key: str) -> None:
    import nats
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().delete_stream(key)
    except Exception:
        pass
    finally:
        await nc.close()


async def _amqp(key: str, payloads: list[bytes]) -> None:
    import aio_pika
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(key, durable=True)
        for p in payloads:
            await channel.default_exchange.publish(aio_pika.Message(p), routing_key=key)


async def _amqp_cleanup(key: str) -> None:
    import aio_pika
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(key)


CASES = [
    Case("redis-list", "kray.redis.list.RealtimeTrigger", 6379,
         lambda k: f"url: redis://127.0.0.1:6379/0\nkey: {k}", _redis_list,
         cleanup=_redis_cleanup),
    Case("redis-stream", "kray.redis.stream.RealtimeTrigger", 6379,
         lambda k: f"url: redis://127.0.0.1:6379/0\nkey: {k}\ngroup: bench", _redis_stream,
         cleanup=_redis_cleanup),
    Case("redis-pubsub", "kray.redis.pubsub.RealtimeTrigger", 6379,
         lambda k: f"url: redis://127.0.0.1:6379/0\nchannel: {k}", _redis_pubsub),
    Case("mqtt", "kray.mqtt.RealtimeTrigger", 1883,
         lambda k: f"server: tcp://127.0.0.1:1883\ntopic: {k}\nqos: 1", _mqtt),
    Case("nats", "kray.nats.RealtimeTrigger", 4222,
         lambda k: f"url: nats://127.0.0.1:4222\nsubject: {k}\njetStream: false", _nats),
    Case("jetstream", "kray.nats.RealtimeTrigger", 4222,
         lambda k: f"url: nats://127.0.0.1:4222\nsubject: {k}\nstream: {k}", _jetstream,
         setup=_jetstream_setup, cleanup=_jetstream_cleanup),
    Case("amqp", "kray.amqp.RealtimeTrigger", 5672,
         lambda k: f"url: amqp://guest:guest@127.0.0.1:5672/\nqueue: {k}\ndeclareQueue: true",
         _amqp, cleanup=_amqp_cleanup),
]


# ---------------------------------------------------------------------------------- the runs
@dataclass
class Result:
    name: str
    skipped: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p95, max
    events: int = 0
    created_s: float | None = None
    ended_s: float | None = None
    rate: float | None = None  # executions created per second
    profile: dict | None = None  # --profile: where the executor spent the burst
    error: str | None = None


def _reachable(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _flow(flow_id: str, case: Case, key: str, max_in_flight: int) -> str:
    props = "".join(f"    {line}\n" for line in case.properties(key).splitlines())
    return (f"id: {flow_id}\nnamespace: {NS}\ntasks:\n{TASK}triggers:\n  - id: watch\n"
            f"    type: {case.type}\n{props}    maxInFlight: {max_in_flight}\n")


def _payloads(start: int, count: int) -> list[bytes]:
    return [json.dumps({"i": start + i, "t": time.time()}).encode() for i in range(count)]


def _first_running(doc: dict) -> float | None:
    for h in doc.get("histories") or (doc.get("state") or {}).get("histories") or []:
        if h["state"] == "RUNNING":
            return datetime.fromisoformat(h["date"]).timestamp()
    return None


def _wait(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise TimeoutError


class Profiler:
    """py-spy on the executor actor during one burst (``--profile``)."""

    def __init__(self, pid: int, path: str):
        import shutil
        import subprocess
        self.path = path
        py_spy = shutil.which("py-spy")
        self.proc = None if py_spy is None else subprocess.Popen(
            [py_spy, "record", "-p", str(pid), "-o", path, "--format", "raw", "-r", "200",
             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)

    def stop(self) -> dict:
        import signal
        import subprocess
        if self.proc is None:
            return {"error": "py-spy is not installed"}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        from benchmarks.profile import summarize
        try:
            with open(self.path) as f:
                return summarize(f.read(), top=15)
        except OSError as e:
            return {"error": str(e)}


def run_case(ray: Any, executor: Any, case: Case, events: int, latency_n: int,
             profile_pid: int | None = None) -> Result:
    result = Result(case.name)
    key = f"kray-bench-{case.name}-{uuid.uuid4().hex[:8]}"
    flow_id = case.name.replace("-", "_")

    def context() -> dict:
        return ray.get(executor.trigger.remote(NS, flow_id, "watch"))["triggerContext"]

    def docs() -> list[dict]:
        return ray.get(executor.search_executions.remote(
            namespace=NS, flow_id=flow_id, size=100_000))["results"]

    def total(states: list[str] | None = None) -> int:
        return int(ray.get(executor.search_executions.remote(
            namespace=NS, flow_id=flow_id, states=states, size=1))["total"])

    stage = "start"

    if case.setup is not None:
        asyncio.run(case.setup(key))
    try:
        ray.get(executor.deploy.remote(_flow(flow_id, case, key, max(100, events))))
        _wait(lambda: context()["status"] == "RUNNING", 60)
        stage = "latency"
        time.sleep(0.3)
        # Warm-up (Ray task workers, plans, the first commits), then the latency: one
        # message at a time.
        asyncio.run(case.publish(key, _payloads(0, WARMUP)))
        _wait(lambda: total(["SUCCESS"]) >= WARMUP, 300)
        warm = {d["id"] for d in docs()}
        for i in range(latency_n):
            asyncio.run(case.publish(key, _payloads(WARMUP + i, 1)))
            time.sleep(0.05)
        sent = WARMUP + latency_n
        _wait(lambda: total() >= sent, 60)
        lat = []
        for doc in (d for d in docs() if d["id"] not in warm):
            body = doc["trigger"].get("body") or {}
            if isinstance(body, dict) and "data" in body:  # a stream entry's field
                body = body["data"]
            started = _first_running(doc)
            if started is not None and isinstance(body, dict) and "t" in body:
                lat.append((started - body["t"]) * 1000)
        lat.sort()
        if lat:
            result.latency_ms = {"p50": round(statistics.median(lat), 1),
                                 "p95": round(lat[int(0.95 * (len(lat) - 1))], 1),
                                 "max": round(lat[-1], 1)}
        _wait(lambda: total(["SUCCESS"]) >= sent, 300)
        stage = "burst"
        # Throughput: a burst.
        payloads = _payloads(sent, events)
        profiler = Profiler(profile_pid, f"/tmp/kray-triggers-{case.name}.folded") \
            if profile_pid else None
        t0 = time.monotonic()
        asyncio.run(case.publish(key, payloads))
        _wait(lambda: total() >= sent + events, 600)
        result.created_s = round(time.monotonic() - t0, 2)
        if profiler is not None:
            result.profile = profiler.stop()
        result.events = events
        result.rate = round(events / result.created_s, 1)
        stage = "burst end"
        _wait(lambda: total(["SUCCESS"]) >= sent + events, 600)
        result.ended_s = round(time.monotonic() - t0, 2)
    except TimeoutError:
        ctx = context()
        result.error = (f"timed out at {stage} (trigger {ctx['status']}, {ctx['events']} events,"
                        f" {total()} executions)")
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        try:
            ray.get(executor.delete_flow.remote(NS, flow_id))
        except Exception:
            pass
        if case.cleanup is not None:
            try:
                asyncio.run(case.cleanup(key))
            except Exception:
                pass
    return result


SLEEP_TASK = """  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: {sleep}
"""
TERMINAL = ["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"]


@dataclass
class Backpressure:
    messages: int
    max_in_flight: int
    peak_in_flight: int = 0
    peak_waiting: int = 0  # the most items seen left in the Redis list
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    paused_seen: bool = False
    ended_s: float | None = None  # from the push until every execution ended
    executions: int = 0
    distinct: int = 0  # distinct trigger bodies among them
    samples: int = 0
    error: str | None = None

    @property
    def exactly_once(self) -> bool:
        return self.executions == self.distinct == self.messages


def run_backpressure(ray: Any, executor: Any, pid: int, total: int, limit: int,
                     sleep: str = "PT0.05S", interval: float = 0.2, timeout: float = 1800
                     ) -> Backpressure:
    """``total`` messages at once on a Redis list, a flow of one 50 ms Sleep, ``maxInFlight``
    ``limit``: sampled every ``interval`` until every execution ended (see the docstring)."""
    import psutil
    import redis as redis_sync

    result = Backpressure(total, limit)
    key = f"kray-bench-bp-{uuid.uuid4().hex[:8]}"
    flow_id = "backpressure"
    case = Case("redis-list", "kray.redis.list.RealtimeTrigger", 6379,
                lambda k: f"url: redis://127.0.0.1:6379/0\nkey: {k}", _redis_list)
    source = _flow(flow_id, case, key, limit).replace(TASK, SLEEP_TASK.format(sleep=sleep))
    process = psutil.Process(pid)
    client = redis_sync.Redis(host="127.0.0.1", port=6379)

    def context() -> dict:
        return ray.get(executor.trigger.remote(NS, flow_id, "watch"))["triggerContext"]

    def count(states: list[str] | None = None) -> int:
        return int(ray.get(executor.search_executions.remote(
            namespace=NS, flow_id=flow_id, states=states, size=1))["total"])

    try:
        ray.get(executor.deploy.remote(source))
        _wait(lambda: context()["status"] == "RUNNING", 60)
        result.rss_before_mb = round(process.memory_info().rss / 2**20, 1)
        result.rss_peak_mb = result.rss_before_mb
        pipe = client.pipeline(transaction=False)
        for i in range(total):
            pipe.rpush(key, json.dumps({"i": i}))
        t0 = time.monotonic()
        pipe.execute()
        deadline = t0 + timeout
        ended = 0
        while time.monotonic() < deadline:
            ctx = context()
            result.samples += 1
            result.peak_in_flight = max(result.peak_in_flight, int(ctx["inFlight"]))
            result.paused_seen |= ctx["status"] == "PAUSED"
            result.peak_waiting = max(result.peak_waiting, int(client.llen(key)))
            rss = round(process.memory_info().rss / 2**20, 1)
            result.rss_peak_mb = max(result.rss_peak_mb, rss)
            if client.llen(key) == 0 and ctx["inFlight"] == 0:
                ended = count(TERMINAL)
                if ended >= total:
                    break
            if result.samples % 25 == 0:
                print(f"  {time.monotonic() - t0:6.1f}s in flight {ctx['inFlight']:4d}, "
                      f"{client.llen(key):6d} waiting in Redis, executor RSS {rss} MB, "
                      f"status {ctx['status']}", file=sys.stderr)
            time.sleep(interval)
        else:
            raise TimeoutError(f"{count(TERMINAL)} of {total} executions ended")
        result.ended_s = round(time.monotonic() - t0, 2)
        time.sleep(1.0)  # anything doubled would show up by now
        # Before the search below: its one page of N documents costs the executor memory.
        result.rss_after_mb = round(process.memory_info().rss / 2**20, 1)
        docs = ray.get(executor.search_executions.remote(
            namespace=NS, flow_id=flow_id, size=total * 2))["results"]
        result.executions = len(docs)
        result.distinct = len({json.dumps(d["trigger"]["body"], sort_keys=True)
                               for d in docs})
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        try:
            ray.get(executor.delete_flow.remote(NS, flow_id))
        except Exception:
            pass
        client.delete(key)
        for k in client.scan_iter(f"*{key}*"):
            client.delete(k)
        client.close()
    return result


def backpressure_table(r: Backpressure) -> str:
    if r.error:
        return f"backpressure: {r.error}"
    return "\n".join([
        f"| messages | maxInFlight | peak inFlight | PAUSED seen | most left in Redis | "
        "executor RSS before | peak | after | all ended | executions | distinct bodies |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r.messages} | {r.max_in_flight} | {r.peak_in_flight} | "
        f"{'yes' if r.paused_seen else 'no'} | {r.peak_waiting} | {r.rss_before_mb} MB | "
        f"{r.rss_peak_mb} MB | {r.rss_after_mb} MB | {r.ended_s} s | {r.executions} | "
        f"{r.distinct} |",
        f"\nexactly one execution per message: {'yes' if r.exactly_once else 'NO'}; "
        f"{r.samples} samples, {r.messages / (r.ended_s or 1):.0f} executions ended per second"])


def raw_ray_baseline(ray: Any, events: int, latency_n: int) -> Result:
    """Raw Ray on a Redis list: an actor BLPOPs and submits one task per message."""
    import redis as redis_sync

    result = Result("raw Ray + Redis list")
    key = f"kray-bench-raw-{uuid.uuid4().hex[:8]}"

    @ray.remote
    def one(body: bytes) -> tuple[float, float]:
        return json.loads(body)["t"], time.time()

    @ray.remote(num_cpus=0)
    class Consumer:
        def __init__(self, key: str):
            self.key, self.refs, self.submitted_at = key, [], []

        def run(self, count: int) -> int:
            client = redis_sync.Redis(host="127.0.0.1", port=6379)
            while len(self.refs) < count:
                item = client.blpop([self.key], timeout=60)
                if item is None:
                    break
                self.refs.append(one.remote(item[1]))
                self.submitted_at.append(time.time())
            return len(self.refs)

        def collect(self) -> tuple[list, list]:
            return ray.get(self.refs), self.submitted_at

    client = redis_sync.Redis(host="127.0.0.1", port=6379)
    try:
        # Warm-up and latency: one message at a time.
        consumer = Consumer.remote(key)
        running = consumer.run.remote(WARMUP + latency_n)
        for body in _payloads(0, WARMUP):
            client.rpush(key, body)
        time.sleep(1.0)
        for i in range(latency_n):
            client.rpush(key, _payloads(WARMUP + i, 1)[0])
            time.sleep(0.05)
        ray.get(running)
        timings, _ = ray.get(consumer.collect.remote())
        lat = sorted((start - sent) * 1000 for sent, start in timings[WARMUP:])
        result.latency_ms = {"p50": round(statistics.median(lat), 1),
                             "p95": round(lat[int(0.95 * (len(lat) - 1))], 1),
                             "max": round(lat[-1], 1)}
        ray.kill(consumer)
        # Burst.
        consumer = Consumer.remote(key)
        ray.get(consumer.collect.remote())  # the actor is up before the clock starts
        running = consumer.run.remote(events)
        t0, t0_wall = time.monotonic(), time.time()
        client.rpush(key, *_payloads(0, events))
        ray.get(running)
        timings, submitted = ray.get(consumer.collect.remote())
        result.events = events
        result.created_s = round(max(submitted) - t0_wall, 2)
        result.ended_s = round(time.monotonic() - t0, 2)
        result.rate = round(events / result.created_s, 1)
        ray.kill(consumer)
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        client.delete(key)
    return result


def ratios(results: list[Result], baseline: Result) -> str:
    """Each trigger against raw Ray: latency p50 (x slower) and creation rate (x of raw)."""
    if baseline.error or not baseline.latency_ms or not baseline.rate:
        return ""
    lines = [f"\nagainst {baseline.name} (p50 {baseline.latency_ms['p50']} ms, "
             f"{baseline.rate} tasks submitted/s, all {baseline.events} ended in "
             f"{baseline.ended_s} s):"]
    for r in results:
        if r.skipped or r.error or not r.latency_ms or not r.rate:
            continue
        lines.append(f"  {r.name:14s} latency p50 x{r.latency_ms['p50'] / baseline.latency_ms['p50']:.1f}"
                     f", rate x{r.rate / baseline.rate:.2f}, all ended "
                     f"x{(r.ended_s or 0) / (baseline.ended_s or 1):.1f}")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    lines = ["| trigger | latency p50 | p95 | max | events | all created | created/s | "
             "all ended | met |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped or r.error:
            lines.append(f"| {r.name} | {r.skipped or r.error} |||||||| |")
            continue
        met = r.latency_ms.get("p50", 1e9) < TARGET_P50_MS and (r.rate or 0) >= TARGET_RATE
        lines.append(f"| {r.name} | {r.latency_ms.get('p50')} ms | {r.latency_ms.get('p95')} ms"
                     f" | {r.latency_ms.get('max')} ms | {r.events} | {r.created_s} s | "
                     f"{r.rate} | {r.ended_s} s | {'yes' if met else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="messages in the burst")
    parser.add_argument("--latency", type=int, default=50, help="messages for the latency")
    parser.add_argument("--types", default=",".join(c.name for c in CASES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the raw Ray baseline on a Redis list")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the executor during each burst; print its top frames")
    parser.add_argument("--backpressure", type=int, metavar="N",
                        help="only the backpressure run: N messages on a Redis list")
    parser.add_argument("--max-in-flight", type=int, default=100,
                        help="the trigger's maxInFlight for --backpressure")
    parser.add_argument("--sleep", default="PT0.05S",
                        help="how long the task of --backpressure's flow sleeps (ISO-8601)")
    args = parser.parse_args()
    wanted = [t.strip() for t in args.types.split(",") if t.strip()]

    import ray

    from kray.executor import ExecutorService
    from kray.runner import ensure_ray
    from kray.triggers.sources import source_types

    started = ensure_ray()
    data = tempfile.mkdtemp(prefix="kray-bench-triggers-")
    executor = ray.remote(ExecutorService).options(num_cpus=0, max_concurrency=10_000).remote(
        {"data_dir": data})
    pid = ray.get(executor.ping.remote())["pid"]
    print(f"kray realtime triggers: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, data in {data}", file=sys.stderr)
    results = []
    baseline: Result | None = None
    if args.backpressure:
        try:
            if not _reachable(6379):
                raise SystemExit("--backpressure needs Redis on 127.0.0.1:6379")
            bp = run_backpressure(ray, executor, pid, args.backpressure, args.max_in_flight,
                                  args.sleep)
        finally:
            ray.kill(executor)
            if started:
                ray.shutdown()
        print(json.dumps(asdict(bp), indent=2) if args.json else backpressure_table(bp))
        print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
        return
    try:
        if not args.no_baseline and _reachable(6379):
            print("raw Ray baseline...", file=sys.stderr)
            baseline = raw_ray_baseline(ray, args.events, args.latency)
        for case in CASES:
            if case.name not in wanted:
                continue
            if case.type not in source_types():
                results.append(Result(case.name, skipped="source not registered"))
            elif not _reachable(case.port):
                results.append(Result(case.name, skipped=f"no broker on :{case.port}"))
            else:
                print(f"{case.name}...", file=sys.stderr)
                results.append(run_case(ray, executor, case, args.events, args.latency,
                                        pid if args.profile else None))
    finally:
        ray.kill(executor)
        if started:
            ray.shutdown()
    if args.json:
        print(json.dumps([asdict(r) for r in ([baseline] if baseline else []) + results],
                         indent=2))
    else:
        print(table(([baseline] if baseline else []) + results))
        if baseline is not None:
            print(ratios(results, baseline))
        for r in results:
            if r.profile and "total" in r.profile:
                print(f"\n{r.name}: executor busy during the burst ({r.profile['samples']} "
                      "samples), kray functions by share of samples on the stack:")
                for name, share in r.profile["total"][:15]:
                    print(f"  {share:5.1f}%  {name}")
        print(f"\ntargets: p50 < {TARGET_P50_MS:.0f} ms, >= {TARGET_RATE:.0f} events/s; "
              f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
