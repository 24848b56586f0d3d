"""MQTT realtime trigger: one execution per message on ``topic`` (``aiomqtt``/paho 2).

Delivery. The trigger connects with a persistent session (MQTT 3.1.1 ``clean_session=false``,
MQTT 5 ``clean_start=false`` with a session expiry) under a client id fixed per trigger, and
subscribes at QoS 1. paho runs in manual-ack mode: the PUBACK of a message is sent only in
``ack``, after its execution is durable, so a message fetched when the actor dies stays in
the broker's session and comes back, with its original packet id, when the trigger
reconnects. Messages published while the trigger is down wait in its session (Mosquitto keeps
up to ``max_queued_messages``, 1000 by default, then drops).

Message ids. MQTT gives no id that is stable and unique across a session: the packet id of an
unacknowledged message is kept on redelivery, but the broker reuses it once acknowledged.
kray's id is therefore ``<client id>/<epoch>/<packet id>/<digest of topic and payload>``.
The epoch (in the persisted ``position()``) moves on after each ack that leaves nothing
fetched unacknowledged, so no packet id is reused within an epoch, a message redelivered after
a restart finds the epoch it was fetched in, and the same payload published twice gets two ids
(two executions). A PUBACK lost with the connection makes the broker resend an acknowledged
message with the DUP flag: ``position()`` also remembers the last 128 acknowledged
(packet id, digest, epoch), and such a resend gets its old id back. Residual window, stated:
if a PUBACK is lost and the actor dies before persisting its position, or if a broker hands
out the same packet id again within one epoch for the same topic and payload (Mosquitto
allocates them sequentially: 65,535 messages later), a message may be taken for a duplicate.

QoS. ``qos: 0`` subscribes at QoS 0: no acknowledgement, no redelivery (at most once), each
message gets a fresh id. ``qos: 2`` (accepted for Kestra flows) subscribes at QoS 1: the QoS 2
handshake state lives in the client's memory, so a client restarted between PUBREC and PUBREL
would lose the message; QoS 1 plus the executor's de-duplication gives exactly one execution.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import uuid
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from kray.triggers.models import EventTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, Source, SourceError
from kray.triggers.sources.brokerutil import Serde, decode_body, host_port, json_safe, trigger_name

SCHEMES = {"tcp": 1883, "mqtt": 1883, "ssl": 8883, "mqtts": 8883, "tls": 8883}


class MqttRealtimeTrigger(EventTrigger):
    """``kray.mqtt.RealtimeTrigger`` (Kestra's ``io.kestra.plugin.mqtt.RealtimeTrigger``).

    ``trigger.*``: ``topic``, ``body`` (JSON when it parses, else text), ``payload`` (the
    same, Kestra's name), ``qos``, ``retain``, ``properties`` (MQTT 5 user properties and
    content type)."""

    kind: ClassVar[str] = "MQTT"

    server: str = Field(min_length=1)
    topic: list[str] = Field(min_length=1)
    qos: int = Field(1, ge=0, le=2)
    client_id: str | None = Field(None, min_length=1, max_length=65535)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    mqtt_version: Literal["V3", "V5"] = "V5"
    serde_type: Serde | None = None
    connection_timeout: timedelta = timedelta(seconds=10)
    session_expiry: timedelta = timedelta(days=7)  # MQTT 5: how long the broker keeps it
    crt: str | None = None  # CA certificate file for ssl:// servers
    https_hostname_verification_enabled: bool = True

    @field_validator("topic", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        if "{{" not in v:  # a template is checked once rendered, when the source opens
            host_port(v, SCHEMES, "server")
        return v


class MqttSource(Source):
    """See the module docstring for the delivery and id rules."""

    redelivers: ClassVar[bool] = True

    #: How many acknowledged messages' ids ``position()`` remembers: a PUBACK lost with the
    #: connection makes the broker resend the message (DUP set), which must get its old id.
    #: The broker never has more than its in-flight window unacknowledged (Mosquitto: 20;
    #: MQTT 5: our Receive Maximum), so this many is plenty.
    RECENT = 128

    def __init__(self, trigger: MqttRealtimeTrigger, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.model: MqttRealtimeTrigger = trigger
        self.redelivers = trigger.qos > 0  # type: ignore[misc] # QoS 0: at most once
        self.client_id = trigger.client_id or trigger_name(self.context)
        position = position or {}
        self.epoch = int(position.get("epoch", 0))
        # [packet id, digest, epoch] of the last acknowledged messages
        self.recent: list[list[Any]] = [list(r) for r in position.get("recent", [])]
        self._client: Any = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._outstanding: set[int] = set()  # packet ids fetched, not yet acknowledged

    @property
    def _sub_qos(self) -> int:
        return min(self.model.qos, 1)

    async def open(self) -> None:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        m = self.model
        try:
            host, port, tls = host_port(m.server, SCHEMES, "server")
        except ValueError as e:  # a templated server that rendered wrong
            raise SourceError(str(e)) from None
        v5 = m.mqtt_version == "V5"
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = min(int(m.session_expiry.total_seconds()), 2**32 - 1)
            props.ReceiveMaximum = min(m.max_in_flight, self.RECENT)
        tls_context = None
        if tls:
            tls_context = ssl.create_default_context(cafile=m.crt)
            tls_context.check_hostname = m.https_hostname_verification_enabled
        client = aiomqtt.Client(
            host, port, identifier=self.client_id, username=m.username, password=m.password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else False, properties=props,
            **({"clean_start": False} if v5 else {}),
            timeout=m.connection_timeout.total_seconds(), tls_context=tls_context)
        paho = client._client  # noqa: SLF001 - aiomqtt exposes neither switch
        paho.manual_ack_set(True)  # PUBACK only in ack(), after the execution is durable
        paho.on_message = self._on_message  # paho's message: it has the DUP flag
        try:
            await client.__aenter__()
            await client.subscribe([(t, self._sub_qos) for t in m.topic])
            # The session outlives the trigger's definition: drop the topics it no longer has.
            stale = [t for t in (self.initial_position or {}).get("topics", [])
                     if t not in m.topic]
            if stale:
                await client.unsubscribe(stale)
        except (aiomqtt.MqttError, OSError, asyncio.TimeoutError) as e:
            await _quiet_exit(client)
            raise SourceError(f"MQTT {host}:{port}: {e}") from None
        self._client = client

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        # Called on the event loop (aiomqtt reads the socket with loop.add_reader). Bounded:
        # the broker sends at most its in-flight window of QoS 1 messages unacknowledged.
        self._queue.put_nowait(message)

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        client = self._connected()
        lost = client._disconnected  # noqa: SLF001
        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getter, lost}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        self._connected()  # a drop while waiting is an error, not "no message"
        if not getter.done() or getter.cancelled():
            return []
        batch = [getter.result()]
        while len(batch) < max_messages and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [self._message(raw) for raw in batch]

    async def ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        client = self._connected()
        for message in messages:
            mid, qos, digest, epoch = message.token
            if qos == 0:
                continue
            if client._client.ack(mid, qos) != 0:  # noqa: SLF001
                raise SourceError("MQTT connection lost before the acknowledgement")
            self.recent.append([mid, digest, epoch])
            self._outstanding.discard(mid)
        del self.recent[:-self.RECENT]
        if not self._outstanding:
            # A new epoch only once nothing fetched is unacknowledged: a message fetched
            # in this epoch and redelivered after a restart must find the same epoch.
            self.epoch += 1

    def position(self) -> dict[str, Any] | None:
        return {"epoch": self.epoch, "recent": self.recent, "topics": list(self.model.topic)}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _quiet_exit(client)

    # -- helpers --------------------------------------------------------------------------
    def _connected(self) -> Any:
        client = self._client
        if client is None:
            raise SourceError("MQTT source is not open")
        lost = client._disconnected  # noqa: SLF001
        if lost.done():
            reason = None if lost.cancelled() else lost.exception()  # retrieved: no log noise
            raise SourceError(f"MQTT connection lost{f': {reason}' if reason else ''}")
        return client

    def _message(self, raw: Any) -> Message:
        payload = bytes(raw.payload or b"")
        topic = str(raw.topic)
        body = decode_body(payload, self.model.serde_type)
        variables = {"topic": topic, "body": body, "payload": body, "qos": raw.qos,
                     "retain": bool(raw.retain),
                     "properties": _properties(getattr(raw, "properties", None))}
        digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:16]
        epoch = self.epoch
        if raw.qos == 0:
            return Message(f"{self.client_id}/q0/{uuid.uuid4().hex}", variables,
                           token=(raw.mid, 0, digest, epoch))
        if raw.dup:  # maybe acked already, the PUBACK lost: then it keeps its old epoch
            epoch = next((e for mid, d, e in reversed(self.recent)
                          if mid == raw.mid and d == digest), epoch)
        self._outstanding.add(raw.mid)
        return Message(f"{self.client_id}/{epoch}/{raw.mid}/{digest}", variables,
                       token=(raw.mid, raw.qos, digest, epoch))


def _properties(props: Any) -> dict[str, Any]:
    """MQTT 5 properties worth a flow's attention (user properties, content type...)."""
    if props is None:
        return {}
    out: dict[str, Any] = {}
    for name in ("ContentType", "ResponseTopic", "CorrelationData", "PayloadFormatIndicator",
                 "MessageExpiryInterval"):
        if hasattr(props, name):
            key = name[0].lower() + name[1:]
            out[key] = json_safe(getattr(props, name))
    user = getattr(props, "UserProperty", None)
    if user:
        out["userProperties"] = {str(k): json_safe(v) for k, v in user}
    return out


async def _quiet_exit(client: Any) -> None:
    try:
        await asyncio.wait_for(client.__aexit__(None, None, None), 5)
    except Exception:  # noqa: BLE001 - close() never raises
        pass


register_source(MqttRealtimeTrigger, "kray.plugins.triggers.mqtt:MqttSource",
                "kray.mqtt.RealtimeTrigger", "io.kestra.plugin.mqtt.RealtimeTrigger")

__all__ = ["MqttRealtimeTrigger", "MqttSource"]
