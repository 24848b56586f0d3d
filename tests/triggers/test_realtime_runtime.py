"""The realtime runtime's pure parts (backoff, keys, what restarts an actor), the Redis trigger
models as a deploy validates them, and the Redis sources straight against the machine's
Redis: a reliable list hands back what was fetched but never acknowledged, with the same ids;
a stream's consumer re-reads its pending entries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kray.errors import FlowValidationError
from kray.flow.parse import parse_flow
from kray.triggers.actor import BACKOFF_FIRST, BACKOFF_MAX, actor_name, jittered, next_backoff
from kray.triggers.models import EventTrigger, parse_trigger
from kray.triggers.realtime import fingerprint, message_key, resume_at
from kray.triggers.sources import source_types
from tests.conftest import skip_or_fail


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    delays = [BACKOFF_FIRST]
    while delays[-1] < BACKOFF_MAX:
        delays.append(next_backoff(delays[-1]))
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and delays[-1] == BACKOFF_MAX == 30.0
    assert next_backoff(BACKOFF_MAX) == BACKOFF_MAX
    spread = {round(jittered(10.0), 3) for _ in range(50)}
    assert len(spread) > 1 and all(8.0 <= d <= 12.0 for d in spread)


def test_names_and_keys() -> None:
    assert actor_name("a.b", "f", "t") == "kray-trigger:a.b/f/t"
    assert message_key("a.b", "f", "t", "1-0") == "a.b/f/t/msg/1-0"


def test_a_paused_trigger_resumes_a_quarter_below_its_limit() -> None:
    assert [resume_at(n) for n in (1, 2, 4, 5, 8, 100, 1000)] == [0, 1, 3, 4, 6, 75, 750]


def flow(trigger: str) -> str:
    return f"""id: f
namespace: t.models
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: watch
{trigger}"""


def model(trigger: str) -> Any:
    (found,) = parse_flow(flow(trigger)).triggers
    return parse_trigger(found)


def test_kestra_names_and_defaults() -> None:
    for name in ("io.kestra.plugin.redis.list.RealtimeTrigger", "kray.redis.list.RealtimeTrigger",
                 "kray.redis.stream.RealtimeTrigger", "kray.redis.pubsub.RealtimeTrigger"):
        assert issubclass(source_types()[name].model, EventTrigger)
    m = model("""    type: io.kestra.plugin.redis.list.RealtimeTrigger
    url: redis://127.0.0.1:6379/0
    key: jobs
    serdeType: JSON""")
    assert (m.kind, m.key, m.serde_type, m.max_in_flight) == ("RedisList", "jobs", "JSON", 100)
    m = model("""    type: kray.redis.pubsub.RealtimeTrigger
    url: redis://127.0.0.1:6379/0
    channel: news
    maxInFlight: 7""")
    assert m.channel == ["news"] and m.pattern == [] and m.max_in_flight == 7


@pytest.mark.parametrize("trigger, where, words", [
    ("""    type: kray.redis.list.RealtimeTrigger
    url: redis://127.0.0.1:6379/0""", "key", "required"),
    ("""    type: kray.redis.list.RealtimeTrigger
    url: http://127.0.0.1:6379/0
    key: k""", "url", "redis://"),
    ("""    type: kray.redis.pubsub.RealtimeTrigger
    url: redis://127.0.0.1:6379/0""", "triggers[0]", "channel or a pattern"),
    ("""    type: kray.redis.stream.RealtimeTrigger
    url: redis://127.0.0.1:6379/0
    key: s
    maxInFlight: 0""", "maxInFlight", "greater than or equal"),
    ("""    type: kray.redis.list.RealtimeTrigger
    url: redis://127.0.0.1:6379/0
    key: k
    kee: typo""", "kee", "extra"),
])
def test_bad_properties_fail_at_deploy_with_their_place(trigger: str, where: str,
                                                        words: str) -> None:
    with pytest.raises(FlowValidationError) as caught:
        model(trigger)
    text = str(caught.value)
    assert where in text and words.lower() in text.lower(), text
    assert all(i.line is not None for i in caught.value.issues)


def test_only_source_properties_need_a_new_actor() -> None:
    base = """    type: kray.redis.list.RealtimeTrigger
    url: redis://127.0.0.1:6379/0
    key: k
"""
    first = fingerprint(model(base))
    assert fingerprint(model(base + "    labels: {a: b}\n    inputs: {x: 1}\n")) == first
    assert fingerprint(model(base.replace("key: k", "key: other"))) != first
    assert fingerprint(model(base + "    maxInFlight: 5\n")) != first


# ---------------------------------------------------------------------------------- sources
@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        skip_or_fail(f"no Redis on 127.0.0.1:6379: {e}")
    yield "redis://127.0.0.1:6379/0"
    client.close()


def cleanup(name: str) -> None:
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379)
    doomed = list(client.scan_iter(f"*{name}*"))
    if doomed:
        client.delete(*doomed)
    client.close()


def test_list_source_hands_back_unacknowledged_items_with_their_ids(redis_url: str) -> None:
    from kray.plugins.triggers.redis import RedisListSource, RedisListTrigger
    key = f"kray-unit-{uuid.uuid4().hex[:8]}"
    trigger = RedisListTrigger(id="w", type="kray.redis.list.RealtimeTrigger", url=redis_url,
                               key=key)
    context = {"name": f"t.unit/f/{key}"}

    async def scenario() -> None:
        import redis.asyncio as aioredis
        producer = aioredis.from_url(redis_url)
        await producer.rpush(key, "a", '{"n": 2}', "c")
        first = RedisListSource(trigger, None, context)
        await first.open()
        got = await first.fetch(2, 0.0)
        assert [m.variables["body"] for m in got] == ["a", {"n": 2}]
        assert got[1].variables["value"] == '{"n": 2}' and got[0].variables["key"] == key
        await first.close()  # "dies" before its ack
        second = RedisListSource(trigger, None, context)
        await second.open()
        again = await second.fetch(10, 0.0)
        assert [m.id for m in again] == [m.id for m in got]  # same ids: deduplicated
        await second.ack(again)
        rest = await second.fetch(10, 0.0)
        assert [m.variables["body"] for m in rest] == ["c"]
        assert len({m.id for m in [*got, *rest]}) == 3
        await second.ack(rest)
        started = asyncio.get_running_loop().time()
        assert await second.fetch(10, 0.3) == []  # waits, then nothing
        assert asyncio.get_running_loop().time() - started >= 0.25
        waiting = asyncio.ensure_future(second.fetch(10, 5.0))
        await asyncio.sleep(0.2)
        await producer.rpush(key, "late")
        woke = await asyncio.wait_for(waiting, 2.0)
        assert [m.variables["body"] for m in woke] == ["late"]
        await second.ack(woke)
        assert await producer.llen(key) == 0
        assert await producer.llen(second.keys[1]) == 0  # nothing left unacknowledged
        await second.close()
        await producer.aclose()

    try:
        asyncio.run(scenario())
    finally:
        cleanup(key)


def test_stream_source_rereads_its_pending_entries(redis_url: str) -> None:
    from kray.plugins.triggers.redis import RedisStreamSource, RedisStreamTrigger
    key = f"kray-unit-{uuid.uuid4().hex[:8]}"
    trigger = RedisStreamTrigger(id="w", type="kray.redis.stream.RealtimeTrigger",
                                 url=redis_url, key=key, start_id="0")

    async def scenario() -> None:
        import redis.asyncio as aioredis
        producer = aioredis.from_url(redis_url)
        ids = [(await producer.xadd(key, {"n": str(i), "tag": "x"})).decode() for i in range(3)]
        first = RedisStreamSource(trigger, None, {"name": key})
        await first.open()
        got = await first.fetch(2, 0.0)
        assert [m.id for m in got] == ids[:2]
        assert got[0].variables["body"] == {"n": 0, "tag": "x"}
        await first.close()  # no ack: pending for this consumer
        second = RedisStreamSource(trigger, None, {"name": key})
        await second.open()
        again = await second.fetch(10, 0.0)
        assert [m.id for m in again] == ids[:2]
        await second.ack(again)
        rest = await second.fetch(10, 0.5)
        assert [m.id for m in rest] == ids[2:]
        await second.ack(rest)
        assert (await producer.xpending(key, "kray"))["pending"] == 0
        await second.close()
        await producer.aclose()

    try:
        asyncio.run(scenario())
    finally:
        cleanup(key)


def test_unreachable_redis_is_a_source_error() -> None:
    from kray.triggers.sources import SourceError
    from kray.plugins.triggers.redis import RedisListSource, RedisListTrigger
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a port nobody listens on
    trigger = RedisListTrigger(id="w", type="kray.redis.list.RealtimeTrigger",
                               url=f"redis://127.0.0.1:{port}/0", key="k")
    source = RedisListSource(trigger, None, {"name": "x"})
    with pytest.raises(SourceError, match="redis"):
        asyncio.run(source.open())
    asyncio.run(source.close())
