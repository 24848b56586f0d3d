"""AMQP 0-9-1 (RabbitMQ) realtime trigger (``aio-pika``): one execution per message.

The trigger consumes ``queue`` with manual acknowledgements and a prefetch of ``maxInFlight``
(at most 65,535): RabbitMQ never has more than that many unacknowledged messages out to the
trigger, the rest waits in the queue. A message is acked (``basic.ack``, ``multiple`` when the
batch is contiguous) only after its execution is durable; one delivered but not acked when the
connection or the actor dies goes back to the queue and is delivered again.

Message ids. AMQP has no broker-assigned id that survives a redelivery (delivery tags are per
channel). The id is the ``message_id`` property when the publisher set one (recommended);
otherwise a digest of the body, routing key, headers and properties (timestamp, correlation
id, type...). Trade-off, stated: without ``message_id``, two messages with identical body,
headers and properties are taken for one and start ONE execution (publish with a
``message_id`` or a timestamp to tell them apart); with it, exactly one execution per message.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

import orjson
from pydantic import Field, model_validator

from kray.triggers.models import EventTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, Source, SourceError
from kray.triggers.sources.brokerutil import decode_body, json_safe, take_batch

_PROPERTIES = ("content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
               "type", "user_id", "app_id", "priority", "delivery_mode", "timestamp")


class AmqpRealtimeTrigger(EventTrigger):
    """``kray.amqp.RealtimeTrigger`` (Kestra's ``io.kestra.plugin.amqp.RealtimeTrigger``).

    Connection: ``url`` (``amqp://user:password@host:port/vhost``, Kestra's deprecated form)
    or ``host``/``port``/``username``/``password``/``virtualHost``. ``declareQueue: true``
    declares ``queue`` durable when missing; otherwise it must exist.

    ``trigger.*``: ``body`` (JSON when it parses, else text), ``data`` (the same, Kestra's
    name), ``headers``, ``routingKey``, ``exchange``, ``messageId``, ``redelivered``,
    ``properties`` (contentType, correlationId, timestamp, appId...)."""

    kind: ClassVar[str] = "AMQP"

    url: str | None = Field(None, repr=False)
    host: str | None = None
    port: int = Field(5672, ge=1, le=65535)
    username: str = "guest"
    password: str | None = Field(None, repr=False)
    virtual_host: str = "/"
    queue: str = Field(min_length=1)
    consumer_tag: str = "Kestra"
    declare_queue: bool = False
    serde_type: Literal["STRING", "JSON", "BYTES"] | None = None
    auto_ack: bool = False
    connection_timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AmqpRealtimeTrigger:
        if not self.url and not self.host:
            raise ValueError("host (or url) is required")
        if self.url and "{{" not in self.url:  # a template is checked once rendered
            parts = urlsplit(self.url)
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise ValueError("url must look like amqp://user:password@host:port/vhost")
        if self.auto_ack:
            raise ValueError("autoAck: true would lose the messages in flight when the "
                             "trigger stops; kray acknowledges after the execution is durable")
        return self

    def connect_kwargs(self) -> dict[str, Any]:
        """``aio_pika.connect`` arguments: ``url`` when given, else the separate fields."""
        if self.url:
            return {"url": self.url}
        return {"host": self.host, "port": self.port, "login": self.username,
                "password": self.password or "", "virtualhost": self.virtual_host}

    def where(self) -> str:
        """host:port/vhost for errors and logs (never the credentials)."""
        if self.url:
            p = urlsplit(self.url)
            return f"{p.hostname}:{p.port or 5672}{unquote(p.path) or '/'}"
        return f"{self.host}:{self.port}{self.virtual_host}"


class AmqpSource(Source):
    """See the module docstring for delivery and ids."""

    redelivers: ClassVar[bool] = True

    def __init__(self, trigger: AmqpRealtimeTrigger, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.model: AmqpRealtimeTrigger = trigger
        self._conn: Any = None
        self._channel: Any = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: set[int] = set()  # delivery tags fetched, not yet acked

    async def open(self) -> None:
        import aio_pika

        m = self.model
        try:
            self._conn = await aio_pika.connect(timeout=m.connection_timeout,
                                                **m.connect_kwargs())
            self._channel = await self._conn.channel()
            await self._channel.set_qos(prefetch_count=min(m.max_in_flight, 65535))
            if m.declare_queue:
                queue = await self._channel.declare_queue(m.queue, durable=True)
            else:
                queue = await self._channel.get_queue(m.queue, ensure=True)
            await queue.consume(self._on_message, no_ack=False, consumer_tag=m.consumer_tag)
        except Exception as e:  # noqa: BLE001 - refused, auth, queue not found (404)...
            await self.close()
            raise SourceError(f"AMQP {m.where()} queue {m.queue!r}: "
                              f"{type(e).__name__}: {e}") from None

    async def _on_message(self, message: Any) -> None:
        self._queue.put_nowait(message)

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        self._check()
        batch = await take_batch(self._queue, max_messages, timeout)
        if not batch:
            self._check()
            return []
        self._check()  # messages of a dead channel cannot be acked: they come back anyway
        self._pending.update(m.delivery_tag for m in batch)
        return [self._message(m) for m in batch]

    def _message(self, raw: Any) -> Message:
        body = bytes(raw.body or b"")
        headers = json_safe(dict(raw.headers or {}))
        properties = {_camel(p): json_safe(getattr(raw, p, None)) for p in _PROPERTIES
                      if getattr(raw, p, None) is not None}
        decoded = decode_body(body, self.model.serde_type)
        variables = {"body": decoded, "data": decoded, "headers": headers,
                     "routingKey": raw.routing_key, "exchange": raw.exchange,
                     "messageId": raw.message_id, "redelivered": bool(raw.redelivered),
                     "properties": properties}
        msg_id = message_id(raw.message_id, raw.routing_key, raw.exchange, headers,
                            properties, body)
        return Message(msg_id, variables, token=raw)

    async def ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        self._check()
        tags = {m.token.delivery_tag for m in messages}
        top = max(tags)
        try:
            if all(t in tags for t in self._pending if t <= top):
                # One basic.ack for the whole batch: every earlier tag is in it.
                await max(messages, key=lambda m: m.token.delivery_tag).token.ack(multiple=True)
            else:
                for message in messages:
                    await message.token.ack()
        except Exception as e:  # noqa: BLE001 - channel or connection closed
            raise SourceError(f"AMQP ack: {type(e).__name__}: {e}") from None
        self._pending -= tags

    async def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:  # noqa: BLE001 - close() never raises
                pass

    def _check(self) -> None:
        if self._conn is None or self._channel is None:
            raise SourceError("AMQP source is not open")
        if self._conn.is_closed or self._channel.is_closed:
            raise SourceError(f"AMQP connection to {self.model.where()} lost")


def message_id(given: str | None, routing_key: str | None, exchange: str | None,
               headers: dict[str, Any], properties: dict[str, Any], body: bytes) -> str:
    """A message's id: ``id/<message_id>`` when the publisher set one, else a digest of
    everything the message carries (see the module docstring for the trade-off). Note that
    aio-pika/aiormq publishers always set a ``message_id`` (a random one by default)."""
    if given:
        return f"id/{given}"
    digest = hashlib.sha256(orjson.dumps([routing_key, exchange, headers, properties],
                                         option=orjson.OPT_SORT_KEYS) + b"\0" + body)
    return f"sha256/{digest.hexdigest()[:32]}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


register_source(AmqpRealtimeTrigger, "kray.plugins.triggers.amqp:AmqpSource",
                "kray.amqp.RealtimeTrigger", "io.kestra.plugin.amqp.RealtimeTrigger")

__all__ = ["AmqpRealtimeTrigger", "AmqpSource", "message_id"]
