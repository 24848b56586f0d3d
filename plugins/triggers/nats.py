"""NATS realtime trigger, core or JetStream (``nats-py``): one execution per message.

JetStream (``durableId`` or ``stream`` set, or ``jetStream: true``; always for Kestra's type
names, whose trigger is JetStream-only): a durable pull consumer on ``subject`` (created if
missing, explicit acks, ``deliverPolicy``), in the stream given or the one that holds the
subject. The id of a message is ``<stream>/<stream sequence>``: stable across redeliveries.
A message is acked after its execution is durable; one fetched but never acked is
redelivered after ``ackWait`` or when the trigger restarts. The broker keeps the position.

Core NATS (no JetStream): a plain subscription on ``subject`` (with ``queueGroup``, the
subscribers of a group share the messages). Core NATS keeps nothing: a message published
while the trigger is down, or in flight when it dies, is lost (at most once). The id is the
``Nats-Msg-Id`` header when the publisher set one, else a fresh one.

The connection does not reconnect by itself: a drop fails ``fetch``/``ack`` with
``SourceError`` and the trigger actor opens a new source with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from kray.triggers.models import EventTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, Source, SourceError
from kray.triggers.sources.brokerutil import (Serde, decode_body, json_safe, take_batch,
                                              trigger_name)

log = logging.getLogger("kray.triggers.nats")

DeliverPolicy = Literal["All", "Last", "New", "ByStartSequence", "ByStartTime",
                        "LastPerSubject"]


class NatsRealtimeTrigger(EventTrigger):
    """``kray.nats.RealtimeTrigger``: core NATS, or JetStream when ``durableId``/``stream``/
    ``jetStream: true`` is given.

    ``trigger.*``: ``subject``, ``body`` (JSON when it parses, else text), ``data`` (the same,
    Kestra's name), ``headers``; with JetStream also ``stream``, ``sequence`` (the stream
    sequence), ``timestamp`` and ``deliveries``."""

    kind: ClassVar[str] = "NATS"
    default_jet_stream: ClassVar[bool | None] = None

    url: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    token: str | None = Field(None, repr=False)
    creds: str | None = Field(None, repr=False)  # a credentials file's path
    jet_stream: bool | None = None
    stream: str | None = Field(None, min_length=1)
    durable_id: str | None = Field(None, pattern=r"^[^.*>\s]+$")
    deliver_policy: DeliverPolicy = "All"
    start_sequence: int | None = Field(None, ge=1)  # with ByStartSequence
    start_time: datetime | None = None  # with ByStartTime
    ack_wait: timedelta = timedelta(seconds=30)
    queue_group: str | None = Field(None, min_length=1)  # core NATS only
    serde_type: Serde | None = None
    batch_size: int | None = Field(None, ge=1)  # Kestra's; the actor sizes its own batches
    poll_duration: timedelta | None = None  # Kestra's; accepted, unused (long polls)
    connection_timeout: timedelta = timedelta(seconds=5)

    @property
    def uses_jet_stream(self) -> bool:
        if self.jet_stream is not None:
            return self.jet_stream
        if self.default_jet_stream is not None:
            return self.default_jet_stream
        return self.durable_id is not None or self.stream is not None

    @model_validator(mode="after")
    def _check(self) -> NatsRealtimeTrigger:
        if self.uses_jet_stream and self.queue_group:
            raise ValueError("queueGroup is for core NATS; a JetStream durable consumer is "
                             "already shared by the subscribers that use it")
        if self.deliver_policy == "ByStartSequence" and self.start_sequence is None:
            raise ValueError("deliverPolicy ByStartSequence needs startSequence")
        if self.deliver_policy == "ByStartTime" and self.start_time is None:
            raise ValueError("deliverPolicy ByStartTime needs startTime")
        if not self.uses_jet_stream and (self.durable_id or self.stream):
            raise ValueError("durableId and stream need JetStream (jetStream: true)")
        return self


class KestraNatsRealtimeTrigger(NatsRealtimeTrigger):
    """Kestra's NATS ``RealtimeTrigger``: always JetStream."""

    default_jet_stream: ClassVar[bool | None] = True


class NatsSource(Source):
    """Builds the core or the JetStream source for the trigger's model (``__new__`` picks the
    subclass, so each one's ``redelivers`` is right)."""

    def __new__(cls, trigger: NatsRealtimeTrigger, *args: Any, **kwargs: Any) -> NatsSource:
        if cls is NatsSource:
            cls = JetStreamSource if trigger.uses_jet_stream else NatsCoreSource
        return super().__new__(cls)

    def __init__(self, trigger: NatsRealtimeTrigger, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.model: NatsRealtimeTrigger = trigger
        self._nc: Any = None
        self._lost: str | None = None

    async def _connect(self) -> None:
        import nats

        m = self.model

        async def on_error(e: Exception) -> None:
            self._lost = self._lost or f"{type(e).__name__}: {e}"

        async def on_disconnect() -> None:
            self._lost = self._lost or "disconnected"

        try:
            self._nc = await nats.connect(
                m.url, user=m.username, password=m.password, token=m.token,
                user_credentials=m.creds, allow_reconnect=False,
                # 0 would retry the first connect forever: 1 gives up after two tries.
                max_reconnect_attempts=1, reconnect_time_wait=0.2,
                connect_timeout=m.connection_timeout.total_seconds(),
                error_cb=on_error, disconnected_cb=on_disconnect, closed_cb=on_disconnect)
        except Exception as e:  # noqa: BLE001 - NoServersError, OSError, auth errors...
            raise SourceError(f"NATS {_redact(m.url)}: {type(e).__name__}: {e}") from None

    def _check(self) -> Any:
        nc = self._nc
        if nc is None:
            raise SourceError("NATS source is not open")
        if self._lost or nc.is_closed or not nc.is_connected:
            raise SourceError(f"NATS connection lost ({self._lost or 'closed'})")
        return nc

    def _variables(self, msg: Any) -> dict[str, Any]:
        body = decode_body(bytes(msg.data or b""), self.model.serde_type)
        headers = {str(k): json_safe(v) for k, v in (msg.headers or {}).items()}
        return {"subject": msg.subject, "body": body, "data": body, "headers": headers}

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 5)
            except Exception:  # noqa: BLE001 - close() never raises
                pass


class NatsCoreSource(NatsSource):
    """Core NATS: at most once (nothing is stored, nothing comes back)."""

    redelivers: ClassVar[bool] = False

    #: Core NATS pushes, whatever the trigger's backpressure: at most this many messages
    #: wait in the actor's memory, the next ones are dropped (counted in ``dropped``).
    BUFFER = 10_000

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(self.BUFFER)
        self.dropped = 0

    async def open(self) -> None:
        await self._connect()

        async def on_message(msg: Any) -> None:
            try:
                self._queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.dropped += 1
                if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                    log.warning("core NATS trigger on %r: %d message(s) dropped, the trigger "
                                "is behind (core NATS keeps nothing)", self.model.subject,
                                self.dropped)

        try:
            await self._nc.subscribe(self.model.subject, queue=self.model.queue_group or "",
                                     cb=on_message)
            await self._nc.flush(timeout=self.model.connection_timeout.total_seconds())
        except Exception as e:  # noqa: BLE001
            await self.close()
            raise SourceError(f"NATS subscribe {self.model.subject!r}: {e}") from None

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        self._check()
        batch = await take_batch(self._queue, max_messages, timeout)
        if not batch:
            self._check()
            return []
        return [self._message(m) for m in batch]

    def _message(self, msg: Any) -> Message:
        given = (msg.headers or {}).get("Nats-Msg-Id")
        msg_id = f"msgid/{given}" if given else f"core/{uuid.uuid4().hex}"
        return Message(msg_id, self._variables(msg))

    async def ack(self, messages: list[Message]) -> None:
        """Nothing to acknowledge in core NATS."""


class JetStreamSource(NatsSource):
    """A durable pull consumer: at least once from the broker, exactly once with the
    executor's de-duplication on the stream sequence."""

    redelivers: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sub: Any = None
        self.durable = self.model.durable_id or trigger_name(self.context)

    async def open(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.api import DeliverPolicy as Policy

        await self._connect()
        m = self.model
        policy = {"All": Policy.ALL, "Last": Policy.LAST, "New": Policy.NEW,
                  "ByStartSequence": Policy.BY_START_SEQUENCE,
                  "ByStartTime": Policy.BY_START_TIME,
                  "LastPerSubject": Policy.LAST_PER_SUBJECT}[m.deliver_policy]
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=policy,
            opt_start_seq=m.start_sequence if m.deliver_policy == "ByStartSequence" else None,
            opt_start_time=(m.start_time.isoformat() if m.start_time  # type: ignore[arg-type]
                            and m.deliver_policy == "ByStartTime" else None),
            ack_wait=m.ack_wait.total_seconds(), filter_subject=m.subject,
            max_ack_pending=max(m.max_in_flight, 1))
        try:
            js = self._nc.jetstream()
            stream = m.stream or await js.find_stream_name_by_subject(m.subject)
            await self._follow_subject(js, stream)
            self._sub = await js.pull_subscribe(m.subject, durable=self.durable,
                                                stream=stream, config=config)
        except Exception as e:  # noqa: BLE001 - stream not found, JetStream off, drops
            await self.close()
            raise SourceError(f"NATS JetStream consumer {self.durable!r} on "
                              f"{m.subject!r}: {type(e).__name__}: {e}") from None

    async def _follow_subject(self, js: Any, stream: str) -> None:
        """An existing durable keeps its configuration, filter included: when the flow's
        ``subject`` changed, point the consumer at the new one (its acks are kept)."""
        import nats.js.errors

        try:
            info = await js.consumer_info(stream, self.durable)
        except nats.js.errors.NotFoundError:
            return  # created by pull_subscribe
        if info.config.filter_subject != self.model.subject:
            info.config.filter_subject = self.model.subject
            await js.add_consumer(stream, info.config)

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        import nats.errors

        self._check()
        try:
            msgs = await self._sub.fetch(batch=max_messages, timeout=max(timeout, 0.001))
        except nats.errors.TimeoutError:
            self._check()
            return []
        except Exception as e:  # noqa: BLE001 - connection closed/draining
            raise SourceError(f"NATS fetch: {type(e).__name__}: {e}") from None
        return [self._message(m) for m in msgs]

    def _message(self, msg: Any) -> Message:
        meta = msg.metadata
        variables = self._variables(msg)
        variables.update(stream=meta.stream, sequence=meta.sequence.stream,
                         timestamp=meta.timestamp.isoformat() if meta.timestamp else None,
                         deliveries=meta.num_delivered)
        return Message(f"{meta.stream}/{meta.sequence.stream}", variables, token=msg)

    async def ack(self, messages: list[Message]) -> None:
        self._check()
        try:
            # JetStream handles acks apart from the connection's PING/PONG, so a flush does
            # not say they were applied: the last one waits for the server's confirmation,
            # and the consumer's acks are applied in order.
            for message in messages[:-1]:
                await message.token.ack()
            if messages:
                await messages[-1].token.ack_sync(
                    timeout=self.model.connection_timeout.total_seconds())
        except Exception as e:  # noqa: BLE001
            raise SourceError(f"NATS ack: {type(e).__name__}: {e}") from None


def _redact(url: str) -> str:
    """The URL without its user info (tokens and passwords stay out of errors and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host = rest.rpartition("@")[2]
    return f"{scheme}{sep}{host}"


register_source(NatsRealtimeTrigger, "kray.plugins.triggers.nats:NatsSource",
                "kray.nats.RealtimeTrigger")
register_source(KestraNatsRealtimeTrigger, "kray.plugins.triggers.nats:NatsSource",
                "io.kestra.plugin.nats.RealtimeTrigger",
                "io.kestra.plugin.nats.core.RealtimeTrigger")

__all__ = ["JetStreamSource", "KestraNatsRealtimeTrigger", "NatsCoreSource",
           "NatsRealtimeTrigger", "NatsSource"]
