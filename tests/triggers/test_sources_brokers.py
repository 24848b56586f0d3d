"""The MQTT, NATS (core and JetStream) and AMQP sources against the machine's real brokers on
127.0.0.1 (Mosquitto :1883, NATS+JetStream :4222, RabbitMQ :5672), without Ray: what a
trigger actor sees of them (``open``/``fetch``/``ack``/``position``/``close``).

Every test uses its own topic/subject/queue and removes the streams, queues and persistent
sessions it made. Outages go through ``TcpProxy`` so the shared brokers stay up."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from kray.triggers.sources import source_types
from kray.plugins.triggers.amqp import AmqpRealtimeTrigger, AmqpSource
from kray.plugins.triggers.amqp import message_id as amqp_message_id
from kray.triggers.sources.base import Message, Source, SourceError
from kray.plugins.triggers.mqtt import MqttRealtimeTrigger, MqttSource
from kray.plugins.triggers.nats import (
    JetStreamSource,
    KestraNatsRealtimeTrigger,
    NatsCoreSource,
    NatsRealtimeTrigger,
    NatsSource,
)
from tests.conftest import skip_or_fail
from tests.triggers.tcpproxy import TcpProxy

MQTT_PORT, NATS_PORT, AMQP_PORT = 1883, 4222, 5672


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def need(port: int, name: str) -> None:
    if not _up(port):
        skip_or_fail(f"{name} is not listening on 127.0.0.1:{port}")


def run(coro: Awaitable[Any], timeout: float = 30) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def context() -> dict[str, Any]:
    return {"namespace": "test.brokers", "flow_id": f"f{uuid.uuid4().hex[:8]}",
            "trigger_id": "t"}


async def drain(source: Source, n: int, timeout: float = 5) -> list[Message]:
    """Fetch until ``n`` messages came (or ``timeout`` seconds passed)."""
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(got) < n and loop.time() < end:
        got += await source.fetch(n - len(got), max(0.05, min(1.0, end - loop.time())))
    return got


async def opened(make: Callable[[], Source]) -> Source:
    source = make()
    await source.open()
    return source


# -- models and registry (pure) -------------------------------------------------------------


def test_kray_and_kestra_type_names_are_registered():
    for name, model in [("kray.mqtt.RealtimeTrigger", MqttRealtimeTrigger),
                        ("io.kestra.plugin.mqtt.RealtimeTrigger", MqttRealtimeTrigger),
                        ("kray.nats.RealtimeTrigger", NatsRealtimeTrigger),
                        ("io.kestra.plugin.nats.RealtimeTrigger", KestraNatsRealtimeTrigger),
                        ("io.kestra.plugin.nats.core.RealtimeTrigger", KestraNatsRealtimeTrigger),
                        ("kray.amqp.RealtimeTrigger", AmqpRealtimeTrigger),
                        ("io.kestra.plugin.amqp.RealtimeTrigger", AmqpRealtimeTrigger)]:
        assert source_types()[name].model is model
        assert issubclass(source_types()[name].source_class(), Source)


def test_kestra_examples_validate():
    mqtt = MqttRealtimeTrigger.model_validate({
        "id": "t", "type": "io.kestra.plugin.mqtt.RealtimeTrigger",
        "server": "tcp://localhost:1883", "clientId": "kestraProducer",
        "topic": ["kestra/sensors/cpu", "kestra/sensors/mem"], "serdeType": "JSON"})
    assert mqtt.qos == 1 and mqtt.client_id == "kestraProducer" and len(mqtt.topic) == 2
    assert MqttRealtimeTrigger.model_validate(
        {"id": "t", "type": "x", "server": "localhost", "topic": "a/b"}).topic == ["a/b"]
    templated = MqttRealtimeTrigger.model_validate(  # checked once rendered, at open
        {"id": "t", "type": "x", "server": "tcp://{{ secret('MQTT_HOST') }}:1883",
         "topic": "a", "password": "{{ secret('MQTT_PASSWORD') }}"})
    assert "MQTT_PASSWORD" not in repr(templated)
    assert not MqttSource(MqttRealtimeTrigger(id="t", type="x", server="h", topic=["a"],
                                              qos=0)).redelivers
    nats = KestraNatsRealtimeTrigger.model_validate({
        "id": "t", "type": "io.kestra.plugin.nats.core.RealtimeTrigger",
        "url": "nats://localhost:4222", "username": "u", "password": "p",
        "subject": "kestra.trigger", "durableId": "natsTrigger", "deliverPolicy": "All"})
    assert nats.uses_jet_stream and nats.durable_id == "natsTrigger"
    core = NatsRealtimeTrigger.model_validate(
        {"id": "t", "type": "kray.nats.RealtimeTrigger", "url": "nats://x", "subject": "a.b",
         "queueGroup": "workers"})
    assert not core.uses_jet_stream
    amqp = AmqpRealtimeTrigger.model_validate({
        "id": "t", "type": "io.kestra.plugin.amqp.RealtimeTrigger", "host": "localhost",
        "port": 5672, "username": "guest", "password": "guest", "virtualHost": "/my_vhost",
        "queue": "amqpTrigger.queue"})
    assert amqp.consumer_tag == "Kestra" and amqp.where() == "localhost:5672/my_vhost"
    old = AmqpRealtimeTrigger.model_validate({
        "id": "t", "type": "x", "url": "amqp://guest:secret@localhost:5672/v", "queue": "q"})
    assert "secret" not in old.where() and "secret" not in repr(old)


@pytest.mark.parametrize("model,data,field", [
    (MqttRealtimeTrigger, {"server": "http://h", "topic": "a"}, "server"),
    (MqttRealtimeTrigger, {"server": "tcp://h", "topic": "a", "qos": 3}, "qos"),
    (MqttRealtimeTrigger, {"server": "tcp://h", "topic": "a", "clientid": "x"}, "clientid"),
    (NatsRealtimeTrigger, {"url": "nats://h", "subject": "a", "durableId": "a.b"}, "durableId"),
    (NatsRealtimeTrigger, {"url": "nats://h", "subject": "a", "durableId": "d",
                           "queueGroup": "g"}, "queueGroup"),
    (NatsRealtimeTrigger, {"url": "nats://h", "subject": "a", "deliverPolicy": "Sometimes"},
     "deliverPolicy"),
    (AmqpRealtimeTrigger, {"queue": "q"}, "host"),
    (AmqpRealtimeTrigger, {"host": "h", "queue": "q", "autoAck": True}, "autoAck"),
])
def test_bad_properties_name_the_field(model: type, data: dict[str, Any], field: str):
    with pytest.raises(ValidationError) as e:
        model.model_validate({"id": "t", "type": "x", **data})
    assert field in str(e.value)


def test_nats_source_class_follows_the_mode():
    core = NatsRealtimeTrigger(id="t", type="x", url="nats://h", subject="s")
    js = NatsRealtimeTrigger(id="t", type="x", url="nats://h", subject="s", stream="S")
    assert type(NatsSource(core)) is NatsCoreSource and not NatsSource(core).redelivers
    assert type(NatsSource(js)) is JetStreamSource and NatsSource(js).redelivers


def test_unreachable_brokers_raise_source_error():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    dead = port.getsockname()[1]
    port.close()
    sources = [
        MqttSource(MqttRealtimeTrigger(id="t", type="x", server=f"tcp://127.0.0.1:{dead}",
                                       topic=["a"], connection_timeout="PT2S"), None, context()),
        NatsSource(NatsRealtimeTrigger(id="t", type="x", url=f"nats://127.0.0.1:{dead}",
                                       subject="a", connection_timeout="PT2S")),
        AmqpSource(AmqpRealtimeTrigger(id="t", type="x", host="127.0.0.1", port=dead, queue="q",
                                       password="hunter2", connection_timeout=2)),
    ]
    for source in sources:
        with pytest.raises(SourceError) as e:
            run(source.open())
        assert "hunter2" not in str(e.value)
        run(source.close())  # never raises, even after a failed open


# -- MQTT ---------------------------------------------------------------------------------------


@pytest.fixture
def mqtt_topic():
    need(MQTT_PORT, "Mosquitto")
    return f"kray-test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mqtt_sessions():
    """Client ids whose persistent sessions the test made; removed at the end (a clean
    connect ends a session)."""
    ids: list[str] = []
    yield ids

    async def forget() -> None:
        import aiomqtt
        for client_id in ids:
            try:
                async with aiomqtt.Client("127.0.0.1", MQTT_PORT, identifier=client_id,
                                          protocol=aiomqtt.ProtocolVersion.V311,
                                          clean_session=True):
                    pass
            except aiomqtt.MqttError:
                pass
    run(forget())


async def mqtt_publish(topic: str, payloads: list[bytes], qos: int = 1) -> None:
    import aiomqtt
    async with aiomqtt.Client("127.0.0.1", MQTT_PORT) as client:
        for p in payloads:
            await client.publish(topic, p, qos=qos)


def mqtt_source(topic: str, ctx: dict[str, Any], position: dict[str, Any] | None = None,
                port: int = MQTT_PORT, **props: Any) -> MqttSource:
    model = MqttRealtimeTrigger.model_validate(
        {"id": "t", "type": "kray.mqtt.RealtimeTrigger", "server": f"tcp://127.0.0.1:{port}",
         "topic": topic, "connectionTimeout": "PT3S", **props})
    return MqttSource(model, position, ctx)


@pytest.mark.parametrize("version", ["V3", "V5"])
def test_mqtt_fetches_every_message_with_its_variables(mqtt_topic, mqtt_sessions, version):
    ctx = context()

    async def scenario() -> list[Message]:
        source = await opened(lambda: mqtt_source(mqtt_topic, ctx, mqttVersion=version))
        mqtt_sessions.append(source.client_id)
        try:
            await mqtt_publish(mqtt_topic, [b'{"n": %d}' % i for i in range(5)] + [b"plain"])
            got = await drain(source, 6)
            await source.ack(got)
            assert await source.fetch(10, 0.3) == []
            return got
        finally:
            await source.close()

    got = run(scenario())
    assert [m.variables["body"] for m in got] == [{"n": i} for i in range(5)] + ["plain"]
    first = got[0].variables
    assert first["topic"] == mqtt_topic and first["payload"] == {"n": 0} and first["qos"] == 1
    assert len({m.id for m in got}) == 6


def test_mqtt_unacked_messages_come_back_with_the_same_ids(mqtt_topic, mqtt_sessions):
    ctx = context()

    async def scenario() -> tuple[list[Message], list[Message], list[Message], list[Message]]:
        source = await opened(lambda: mqtt_source(mqtt_topic, ctx))
        mqtt_sessions.append(source.client_id)
        await mqtt_publish(mqtt_topic, [b"a", b"b", b"a"])  # a legit duplicate payload
        first = await drain(source, 3)
        position = source.position()
        await source.close()  # the actor died before the executions were durable

        again = await opened(lambda: mqtt_source(mqtt_topic, ctx, position))
        redelivered = await drain(again, 3)
        await again.ack(redelivered)
        position = again.position()
        await again.close()

        # Published while the trigger is down: kept in its persistent session.
        await mqtt_publish(mqtt_topic, [b"a", b"c"])
        third = await opened(lambda: mqtt_source(mqtt_topic, ctx, position))
        later = await drain(third, 2)
        extra = await third.fetch(10, 0.3)  # the acked ones never come back
        await third.ack(later)
        await third.close()
        return first, redelivered, later, extra

    first, redelivered, later, extra = run(scenario())
    assert [m.variables["body"] for m in first] == ["a", "b", "a"]
    assert [m.id for m in redelivered] == [m.id for m in first]
    assert len({m.id for m in first}) == 3  # the same payload twice is two messages
    assert [m.variables["body"] for m in later] == ["a", "c"] and extra == []
    assert not {m.id for m in later} & {m.id for m in first}


def test_mqtt_changed_topics_leave_the_session(mqtt_topic, mqtt_sessions):
    ctx, old, new = context(), f"{mqtt_topic}/old", f"{mqtt_topic}/new"

    async def scenario() -> list[Message]:
        source = await opened(lambda: mqtt_source(old, ctx))
        mqtt_sessions.append(source.client_id)
        position = source.position()
        await source.close()
        again = await opened(lambda: mqtt_source(new, ctx, position))
        await mqtt_publish(old, [b"stale"])
        await mqtt_publish(new, [b"fresh"])
        got = await drain(again, 2, timeout=1)
        await again.ack(got)
        await again.close()
        return got

    assert [m.variables["body"] for m in run(scenario())] == ["fresh"]


def test_mqtt_qos0_is_at_most_once(mqtt_topic, mqtt_sessions):
    ctx = context()

    async def scenario() -> tuple[list[Message], list[Message]]:
        source = await opened(lambda: mqtt_source(mqtt_topic, ctx, qos=0))
        mqtt_sessions.append(source.client_id)
        await mqtt_publish(mqtt_topic, [b"x", b"y"], qos=0)
        got = await drain(source, 2)
        await source.close()  # not acked: QoS 0 has nothing to ack, nothing comes back
        again = await opened(lambda: mqtt_source(mqtt_topic, ctx, qos=0))
        later = await again.fetch(10, 0.5)
        await again.close()
        return got, later

    got, later = run(scenario())
    assert [m.variables["body"] for m in got] == ["x", "y"] and later == []


def test_mqtt_broker_down_and_up(mqtt_topic, mqtt_sessions):
    ctx = context()

    async def scenario() -> tuple[list[Message], list[Message]]:
        with TcpProxy(MQTT_PORT) as proxy:
            source = await opened(lambda: mqtt_source(mqtt_topic, ctx, port=proxy.port))
            mqtt_sessions.append(source.client_id)
            await mqtt_publish(mqtt_topic, [b"1", b"2"])
            before = await drain(source, 2)
            await source.ack(before[:1])
            # Cut before the event loop wrote anything: the PUBACK of "1" is lost with the
            # connection, so the broker resends "1" too (DUP): it must keep its id.
            proxy.cut()
            with pytest.raises(SourceError):
                for _ in range(50):  # the drop is seen at the next read
                    await source.fetch(10, 0.1)
            with pytest.raises(SourceError):
                await source.ack(before[1:])
            position = source.position()
            await source.close()
            await mqtt_publish(mqtt_topic, [b"3"])  # while the trigger cannot connect
            with pytest.raises(SourceError):
                await mqtt_source(mqtt_topic, ctx, position, port=proxy.port).open()
            proxy.restore()
            again = await opened(lambda: mqtt_source(mqtt_topic, ctx, position,
                                                     port=proxy.port))
            after = await drain(again, 3)
            await again.ack(after)
            await again.close()
            return before, after

    before, after = run(scenario())
    assert [m.variables["body"] for m in before] == [1, 2]
    assert [m.variables["body"] for m in after] == [1, 2, 3]
    assert [m.id for m in after[:2]] == [m.id for m in before]  # one execution each


# -- NATS ---------------------------------------------------------------------------------------


@pytest.fixture
def nats_subject():
    need(NATS_PORT, "NATS")
    return f"kray.test.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def jetstream(nats_subject):
    """A stream of its own on ``<subject>`` (file storage), deleted at the end."""
    import nats
    name = f"KRAYTEST_{uuid.uuid4().hex[:10]}"

    async def make() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            await nc.jetstream().add_stream(name=name, subjects=[nats_subject])
        finally:
            await nc.close()

    try:
        run(make())
    except Exception as e:  # noqa: BLE001 - JetStream disabled
        skip_or_fail(f"NATS JetStream unavailable: {e}")
    yield name

    async def drop() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()
    run(drop())


async def nats_publish(subject: str, payloads: list[bytes], js: bool = False,
                       headers: dict[str, str] | None = None) -> None:
    import nats
    nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
    try:
        for p in payloads:
            if js:
                await nc.jetstream().publish(subject, p, headers=headers)
            else:
                await nc.publish(subject, p, headers=headers)
        await nc.flush()
    finally:
        await nc.close()


def nats_source(subject: str, ctx: dict[str, Any], port: int = NATS_PORT,
                **props: Any) -> NatsSource:
    model = NatsRealtimeTrigger.model_validate(
        {"id": "t", "type": "kray.nats.RealtimeTrigger", "url": f"nats://127.0.0.1:{port}",
         "subject": subject, "connectionTimeout": "PT3S", **props})
    return NatsSource(model, None, ctx)


def test_nats_core_fetches_messages(nats_subject):
    ctx = context()

    async def scenario() -> list[Message]:
        source = await opened(lambda: nats_source(nats_subject, ctx, queueGroup="g"))
        try:
            await nats_publish(nats_subject, [b'{"k": "v"}', b"text"], headers={"h": "1"})
            got = await drain(source, 2)
            await source.ack(got)
            return got
        finally:
            await source.close()

    got = run(scenario())
    assert [m.variables["body"] for m in got] == [{"k": "v"}, "text"]
    assert got[0].variables["subject"] == nats_subject
    assert got[0].variables["headers"] == {"h": "1"} and got[0].id != got[1].id


def test_jetstream_fetch_ack_and_redelivery(nats_subject, jetstream):
    ctx = context()

    async def scenario() -> tuple[list[Message], list[Message], list[Message]]:
        await nats_publish(nats_subject, [b'{"i": %d}' % i for i in range(4)], js=True)
        source = await opened(lambda: nats_source(nats_subject, ctx, stream=jetstream,
                                                  ackWait="PT1S"))
        first = await drain(source, 4)
        await source.ack(first[:2])
        await source.close()  # the last two were never acked
        await asyncio.sleep(1.2)  # JetStream redelivers after ackWait
        again = await opened(lambda: nats_source(nats_subject, ctx, stream=jetstream,
                                                 ackWait="PT1S"))
        redelivered = await drain(again, 2)
        await again.ack(redelivered)
        await asyncio.sleep(1.2)
        extra = await again.fetch(10, 0.3)
        await again.close()
        return first, redelivered, extra

    first, redelivered, extra = run(scenario())
    assert [m.variables["body"] for m in first] == [{"i": i} for i in range(4)]
    assert [m.id for m in first] == [f"{jetstream}/{i}" for i in range(1, 5)]
    assert first[0].variables["sequence"] == 1 and first[0].variables["stream"] == jetstream
    assert [m.id for m in redelivered] == [m.id for m in first[2:]]
    assert redelivered[0].variables["deliveries"] == 2
    assert extra == []


def test_jetstream_finds_the_stream_by_subject_and_creates_the_durable(nats_subject,
                                                                      jetstream):
    import nats
    ctx = context()

    async def scenario() -> tuple[list[Message], str]:
        source = await opened(lambda: nats_source(nats_subject, ctx, jetStream=True))
        await nats_publish(nats_subject, [b"x"], js=True)
        got = await drain(source, 1)
        await source.ack(got)
        await source.close()
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            info = await nc.jetstream().consumer_info(jetstream, source.durable)
        finally:
            await nc.close()
        return got, info.config.durable_name

    got, durable = run(scenario())
    assert got[0].id == f"{jetstream}/1" and durable.startswith("kray-")


def test_jetstream_deliver_policies(nats_subject, jetstream):
    from datetime import UTC, datetime

    async def scenario() -> tuple[list[Message], list[Message], list[Message]]:
        await nats_publish(nats_subject, [b"1", b"2"], js=True)
        await asyncio.sleep(0.05)
        middle = datetime.now(UTC)
        await nats_publish(nats_subject, [b"3"], js=True)
        out = []
        for props in ({"deliverPolicy": "ByStartSequence", "startSequence": 2},
                      {"deliverPolicy": "ByStartTime", "startTime": middle.isoformat()},
                      {"deliverPolicy": "Last"}):
            source = await opened(lambda: nats_source(nats_subject, context(), stream=jetstream,
                                                      **props))
            out.append(await drain(source, 3, timeout=1))
            await source.close()
        return out[0], out[1], out[2]

    by_seq, by_time, last = run(scenario())
    assert [m.variables["sequence"] for m in by_seq] == [2, 3]
    assert [m.variables["sequence"] for m in by_time] == [3]
    assert [m.variables["sequence"] for m in last] == [3]


def test_jetstream_changed_subject_moves_the_durable(nats_subject):
    """A new revision of the flow listens to another subject of the same stream: the
    trigger's durable consumer follows it (a stream of its own, on ``<subject>w.*``)."""
    import nats
    ctx, base = context(), nats_subject + "w"
    name = f"KRAYTEST_{uuid.uuid4().hex[:10]}"

    async def scenario() -> list[Message]:
        nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        await nc.jetstream().add_stream(name=name, subjects=[f"{base}.*"])
        try:
            source = await opened(lambda: nats_source(f"{base}.old", ctx, stream=name))
            await source.close()
            again = await opened(lambda: nats_source(f"{base}.new", ctx, stream=name))
            await nats_publish(f"{base}.old", [b"stale"], js=True)
            await nats_publish(f"{base}.new", [b"fresh"], js=True)
            got = await drain(again, 2, timeout=1)
            await again.ack(got)
            await again.close()
            return got
        finally:
            await nc.jetstream().delete_stream(name)
            await nc.close()

    assert [m.variables["body"] for m in run(scenario())] == ["fresh"]


def test_jetstream_missing_stream_is_a_source_error(nats_subject):
    with pytest.raises(SourceError, match="stream|Stream|NotFound"):
        run(nats_source(nats_subject, context(), jetStream=True).open())


def test_jetstream_broker_down_and_up(nats_subject, jetstream):
    ctx = context()

    async def scenario() -> tuple[list[Message], list[Message]]:
        with TcpProxy(NATS_PORT) as proxy:
            make = lambda: nats_source(nats_subject, ctx, port=proxy.port,  # noqa: E731
                                       stream=jetstream, ackWait="PT1S")
            source = await opened(make)
            await nats_publish(nats_subject, [b"1", b"2"], js=True)
            before = await drain(source, 2)
            await source.ack(before[:1])
            proxy.cut()
            with pytest.raises(SourceError):
                for _ in range(50):
                    await source.fetch(10, 0.1)
            with pytest.raises(SourceError):
                await source.ack(before[1:])
            await source.close()
            await nats_publish(nats_subject, [b"3"], js=True)
            proxy.restore()
            await asyncio.sleep(1.2)
            again = await opened(make)
            after = await drain(again, 2)
            await again.ack(after)
            await again.close()
            return before, after

    before, after = run(scenario())
    assert [m.variables["body"] for m in after] == [2, 3]
    assert after[0].id == before[1].id


# -- AMQP ---------------------------------------------------------------------------------------


@pytest.fixture
def amqp_queue():
    """A queue name of its own; the queue is deleted at the end."""
    need(AMQP_PORT, "RabbitMQ")
    name = f"kray-test-{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        import aio_pika
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/")
        try:
            channel = await conn.channel()
            await channel.queue_delete(name)
        finally:
            await conn.close()
    run(drop())


async def amqp_publish(queue: str, bodies: list[bytes], **props: Any) -> None:
    import aio_pika
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/")
    try:
        channel = await conn.channel()  # note: aiormq gives every message a message_id
        await channel.declare_queue(queue, durable=True)
        for i, body in enumerate(bodies):
            extra = {k: (v(i) if callable(v) else v) for k, v in props.items()}
            await channel.default_exchange.publish(aio_pika.Message(body, **extra),
                                                   routing_key=queue)
    finally:
        await conn.close()


def amqp_source(queue: str, port: int = AMQP_PORT, **props: Any) -> AmqpSource:
    model = AmqpRealtimeTrigger.model_validate(
        {"id": "t", "type": "kray.amqp.RealtimeTrigger", "host": "127.0.0.1", "port": port,
         "username": "guest", "password": "guest", "queue": queue, "declareQueue": True,
         "connectionTimeout": 3, **props})
    return AmqpSource(model, None, context())


def test_amqp_fetches_messages_with_properties(amqp_queue):
    async def scenario() -> list[Message]:
        source = await opened(lambda: amqp_source(amqp_queue))
        try:
            await amqp_publish(amqp_queue, [b'{"a": 1}', b"hello"],
                               message_id=lambda i: f"m{i}", headers={"h": "v"},
                               content_type="application/json")
            got = await drain(source, 2)
            await source.ack(got)
            assert await source.fetch(10, 0.3) == []
            return got
        finally:
            await source.close()

    got = run(scenario())
    assert [m.variables["body"] for m in got] == [{"a": 1}, "hello"]
    v = got[0].variables
    assert v["data"] == {"a": 1} and v["routingKey"] == amqp_queue and v["messageId"] == "m0"
    assert v["headers"] == {"h": "v"} and v["properties"]["contentType"] == "application/json"
    assert [m.id for m in got] == ["id/m0", "id/m1"]


def test_amqp_unacked_messages_come_back_with_the_same_ids(amqp_queue):
    async def scenario() -> tuple[list[Message], list[Message], list[Message]]:
        await amqp_publish(amqp_queue, [b"p", b"q", b"r"], message_id=lambda i: f"x{i}")
        source = await opened(lambda: amqp_source(amqp_queue))
        first = await drain(source, 3)
        await source.ack(first[:1])
        await source.close()
        again = await opened(lambda: amqp_source(amqp_queue))
        redelivered = await drain(again, 2)
        await again.ack(redelivered)
        extra = await again.fetch(10, 0.3)
        await again.close()
        return first, redelivered, extra

    first, redelivered, extra = run(scenario())
    assert [m.variables["body"] for m in first] == ["p", "q", "r"]
    assert [m.id for m in redelivered] == [m.id for m in first[1:]]
    assert all(m.variables["redelivered"] for m in redelivered)
    assert extra == []


def test_amqp_ids_without_message_id_are_a_digest_of_the_content():
    """The documented trade-off: without ``message_id`` (publishers other than aio-pika may
    leave it out) the id is a digest of the content, so identical messages share it."""
    args = ("rk", "", {"h": "v"}, {"timestamp": "2026-01-01T00:00:00"})
    assert amqp_message_id("m1", *args, b"x") == "id/m1"
    same = amqp_message_id(None, *args, b"x")
    assert same.startswith("sha256/") and same == amqp_message_id("", *args, b"x")
    assert same != amqp_message_id(None, *args, b"y")
    assert same != amqp_message_id(None, "rk", "", {"h": "w"}, args[3], b"x")
    assert same != amqp_message_id(None, "rk", "", {"h": "v"}, {}, b"x")


def test_amqp_missing_queue_without_declare_is_a_source_error(amqp_queue):
    with pytest.raises(SourceError, match=amqp_queue):
        run(amqp_source(amqp_queue, declareQueue=False).open())


def test_amqp_broker_down_and_up(amqp_queue):
    async def scenario() -> tuple[list[Message], list[Message]]:
        with TcpProxy(AMQP_PORT) as proxy:
            source = await opened(lambda: amqp_source(amqp_queue, port=proxy.port))
            await amqp_publish(amqp_queue, [b"1", b"2"], message_id=lambda i: f"d{i}")
            before = await drain(source, 2)
            await source.ack(before[:1])
            proxy.cut()
            with pytest.raises(SourceError):
                for _ in range(50):
                    await source.fetch(10, 0.1)
                    await source.ack(before[1:])
            await source.close()
            await amqp_publish(amqp_queue, [b"3"], message_id="d2")
            with pytest.raises(SourceError):
                await amqp_source(amqp_queue, port=proxy.port).open()
            proxy.restore()
            again = await opened(lambda: amqp_source(amqp_queue, port=proxy.port))
            after: list[Message] = []
            while not any(m.variables["body"] == 3 for m in after):
                after += await again.fetch(10, 5)
            await again.ack(after)
            await again.close()
            return before, after

    before, after = run(scenario())
    # "1" was acked, but its basic.ack may have been lost with the connection: then it comes
    # back, with its id (the executor has its execution already).
    bodies = [m.variables["body"] for m in after]
    assert bodies in ([2, 3], [1, 2, 3])
    assert [m.id for m in after] == [f"id/d{b - 1}" for b in bodies]
    assert [m.id for m in before] == ["id/d0", "id/d1"]
