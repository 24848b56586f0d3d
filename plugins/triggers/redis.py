"""Redis realtime triggers: a list (reliable queue), a stream (consumer group), pub/sub.

The models import without the ``redis`` package; the sources import ``redis.asyncio`` when
they are built, inside the trigger actor.

Delivery:
- **list** (``kray.redis.list.RealtimeTrigger``, Kestra's ``io.kestra.plugin.redis.list.
  RealtimeTrigger``): items are popped from the head of ``key`` (producers ``RPUSH``) by a
  Lua script that, atomically, moves each into a processing list of the trigger's own and
  gives it an id (``<epoch>-<sequence>``, both kept in Redis next to the processing list). An
  item is removed from the processing list only once its execution is durable (``ack``); a
  trigger that restarts reads its processing list first, with the ids they already had, so a
  message is never lost nor started twice. Waiting is a blocking ``BLMOVE key key RIGHT
  RIGHT`` (a rotation of one element onto itself: it changes nothing, it only wakes up when
  the list is not empty), so an idle trigger costs one blocked connection.
- **stream** (``kray.redis.stream.RealtimeTrigger``): a consumer group (``XGROUP CREATE ...
  MKSTREAM``; ``startId`` ``$``, the default, takes only new entries, ``0`` the whole
  stream); after a restart the consumer's pending entries are read first, then new ones;
  ``XACK`` once durable. The message id is the entry id.
- **pub/sub** (``kray.redis.pubsub.RealtimeTrigger``): Redis pub/sub keeps nothing: a
  message published while the trigger is down, reconnecting, or paused by backpressure is
  lost (at most once). Use a list or a stream when every message matters.

``trigger.*``: ``body`` (the payload, JSON when it parses, else text), ``value`` (Kestra's
name: the text with ``serdeType: STRING``, Kestra's default, the JSON value with ``JSON``),
``key`` (list, stream) or ``channel``/``pattern`` (pub/sub). A stream entry's ``body`` is its
fields as an object, each value JSON when it parses, else text; ``id`` is the entry id.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kray.triggers.firing import parse_body
from kray.triggers.models import EventTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, Source, SourceError

Serde = Literal["STRING", "JSON"]


class RedisTrigger(EventTrigger):
    """What every Redis trigger has: the server's URL (``redis://[:password@]host:port/db``
    or ``rediss://``) and how payloads read as ``trigger.value``."""

    url: str = Field(min_length=1, repr=False)
    serde_type: Serde = "STRING"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if "{{" not in v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("url must start with redis://, rediss:// or unix://")
        return v


class RedisListTrigger(RedisTrigger):
    """One execution per item of the list ``key``, popped from its head."""

    kind: ClassVar[str] = "RedisList"

    key: str = Field(min_length=1)


class RedisStreamTrigger(RedisTrigger):
    """One execution per entry of the stream ``key``, read through consumer group
    ``group`` as ``consumer`` (default: a name fixed per trigger)."""

    kind: ClassVar[str] = "RedisStream"

    key: str = Field(min_length=1)
    group: str = Field("kray", min_length=1)
    consumer: str | None = Field(None, min_length=1)
    start_id: str = Field("$", pattern=r"^(\$|0|\d+(-\d+)?)$")


class RedisPubSubTrigger(RedisTrigger):
    """One execution per message on ``channel`` (one or more) or ``pattern`` (glob-style);
    nothing is redelivered."""

    kind: ClassVar[str] = "RedisPubSub"

    channel: list[str] = Field(default_factory=list)
    pattern: list[str] = Field(default_factory=list)

    @field_validator("channel", "pattern", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _some(self) -> RedisPubSubTrigger:
        if not (self.channel or self.pattern):
            raise ValueError("give a channel or a pattern (or lists of them)")
        return self


def payload_variables(payload: bytes, serde: Serde) -> dict[str, Any]:
    """``body`` (JSON when it parses, else text) and Kestra's ``value`` (per ``serdeType``)."""
    body = parse_body(payload)
    value = body if serde == "JSON" else payload.decode("utf-8", errors="replace")
    return {"body": body, "value": value}


def _connection_error() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError
    return (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError)


class _RedisSource(Source):
    trigger: RedisTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.client: Any = None

    def _name(self) -> str:
        return str(self.context.get("name") or self.trigger.id)

    async def _connect(self) -> None:
        import redis.asyncio as aioredis
        try:
            self.client = aioredis.from_url(self.trigger.url, socket_connect_timeout=5,
                                            health_check_interval=30)
            await self.client.ping()
        except _connection_error() as e:
            raise SourceError(f"redis unreachable: {e}") from e
        except Exception as e:  # bad URL, authentication
            from redis.exceptions import RedisError
            if isinstance(e, (RedisError, ValueError)):
                raise SourceError(f"redis refused the connection: {e}") from e
            raise

    async def _guard(self, call: Any) -> Any:
        """Await ``call``; a lost connection is a ``SourceError`` (the actor backs off)."""
        from redis.exceptions import RedisError
        try:
            return await call
        except _connection_error() as e:
            raise SourceError(f"redis connection lost: {e}") from e
        except RedisError as e:
            raise SourceError(f"redis error: {e}") from e

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass


# Pops up to ARGV[1] items from the head of KEYS[1] into the processing list KEYS[2], each
# wrapped as "<epoch>-<seq>:<item>"; KEYS[3] holds the sequence, KEYS[4] the epoch (set once,
# to ARGV[2]: ids stay unique if the sequence key is ever lost with it).
_POP = """
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[4], epoch)
end
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('LPOP', KEYS[1])
  if not item then break end
  local envelope = epoch .. '-' .. redis.call('INCR', KEYS[3]) .. ':' .. item
  redis.call('RPUSH', KEYS[2], envelope)
  out[i] = envelope
end
return out
"""


class RedisListSource(_RedisSource):
    trigger: RedisListTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        base = f"kray:trigger:{self._name()}:{trigger.key}"
        self.keys = [trigger.key, f"{base}:processing", f"{base}:seq", f"{base}:epoch"]
        self.unacked: list[bytes] = []
        self.script: Any = None

    async def open(self) -> None:
        await self._connect()
        self.script = self.client.register_script(_POP)
        # Fetched by an earlier actor but never acknowledged: first, with their ids.
        self.unacked = list(await self._guard(self.client.lrange(self.keys[1], 0, -1)))

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        if self.unacked:
            envelopes, self.unacked = self.unacked[:max_messages], self.unacked[max_messages:]
            return [self._message(e) for e in envelopes]
        envelopes = await self._pop(max_messages)
        if not envelopes and timeout > 0:
            # Wait for the list to be non-empty without taking anything (see the docstring).
            woke = await self._guard(self.client.blmove(self.keys[0], self.keys[0],
                                                        timeout, "RIGHT", "RIGHT"))
            if woke is not None:
                envelopes = await self._pop(max_messages)
        return [self._message(e) for e in envelopes]

    async def _pop(self, count: int) -> list[bytes]:
        return list(await self._guard(self.script(keys=self.keys,
                                                  args=[count, uuid.uuid4().hex[:12]])))

    def _message(self, envelope: bytes) -> Message:
        ident, _, payload = envelope.partition(b":")
        return Message(ident.decode(), {"key": self.trigger.key,
                                        **payload_variables(payload, self.trigger.serde_type)},
                       envelope)

    async def ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        pipe = self.client.pipeline(transaction=False)
        for m in messages:
            pipe.lrem(self.keys[1], 1, m.token)
        await self._guard(pipe.execute())


class RedisStreamSource(_RedisSource):
    trigger: RedisStreamTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.consumer = trigger.consumer or f"kray-{self._name()}"
        self.backlog = True  # this consumer's pending entries are read first

    async def open(self) -> None:
        from redis.exceptions import ResponseError
        await self._connect()
        try:
            await self.client.xgroup_create(self.trigger.key, self.trigger.group,
                                            id=self.trigger.start_id, mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise SourceError(f"redis refused the consumer group: {e}") from e
        except _connection_error() as e:
            raise SourceError(f"redis connection lost: {e}") from e
        self.backlog = True

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        key, group = self.trigger.key, self.trigger.group
        if self.backlog:
            found = await self._guard(self.client.xreadgroup(
                group, self.consumer, {key: "0"}, count=max_messages))
            entries = _entries(found)
            gone = [eid for eid, fields in entries if not fields]  # deleted while pending
            if gone:
                await self._guard(self.client.xack(key, group, *gone))
            entries = [(eid, f) for eid, f in entries if f]
            if entries:
                return [self._message(eid, fields) for eid, fields in entries]
            if not gone:
                self.backlog = False
        block = int(timeout * 1000) if timeout > 0 else None
        found = await self._guard(self.client.xreadgroup(
            group, self.consumer, {key: ">"}, count=max_messages, block=block))
        return [self._message(eid, fields) for eid, fields in _entries(found) if fields]

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
        ident = entry_id.decode()
        body = {k.decode("utf-8", errors="replace"): parse_body(v) for k, v in fields.items()}
        return Message(ident, {"key": self.trigger.key, "id": ident, "body": body,
                               "value": body}, ident)

    async def ack(self, messages: list[Message]) -> None:
        if messages:
            await self._guard(self.client.xack(self.trigger.key, self.trigger.group,
                                               *[m.token for m in messages]))


def _entries(found: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """``XREADGROUP``'s answer (RESP2: ``[[key, entries]]``; RESP3: ``{key: [entries]}``)
    as ``[(id, fields)]``."""
    if not found:
        return []
    out = []
    for _, entries in (found.items() if isinstance(found, dict) else found):
        if isinstance(found, dict) and entries and isinstance(entries[0], list) \
                and entries[0] and isinstance(entries[0][0], (list, tuple)):
            entries = entries[0]
        for eid, fields in entries:
            out.append((eid, fields or {}))
    return out


class RedisPubSubSource(_RedisSource):
    trigger: RedisPubSubTrigger
    redelivers: ClassVar[bool] = False

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.pubsub: Any = None

    async def open(self) -> None:
        await self._connect()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if self.trigger.channel:
            await self._guard(self.pubsub.subscribe(*self.trigger.channel))
        if self.trigger.pattern:
            await self._guard(self.pubsub.psubscribe(*self.trigger.pattern))

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[Message] = []
        while len(out) < max_messages:
            wait = deadline - loop.time() if not out else 0.0
            got = await self._guard(self.pubsub.get_message(timeout=max(0.0, wait)))
            if got is None:
                if out or loop.time() >= deadline:
                    break
                continue  # a subscription notice: keep waiting
            if got.get("type") not in ("message", "pmessage"):
                continue
            data = got["data"] if isinstance(got["data"], bytes) else str(got["data"]).encode()
            variables = {"channel": _text(got["channel"]),
                         **payload_variables(data, self.trigger.serde_type)}
            if got.get("pattern") is not None:
                variables["pattern"] = _text(got["pattern"])
            out.append(Message(uuid.uuid4().hex, variables))
        return out

    async def ack(self, messages: list[Message]) -> None:
        return None  # nothing to acknowledge: pub/sub keeps nothing

    async def close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:
                pass
        await super().close()


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


register_source(RedisListTrigger, "kray.plugins.triggers.redis:RedisListSource",
                "kray.redis.list.RealtimeTrigger", "io.kestra.plugin.redis.list.RealtimeTrigger",
                "io.kestra.plugin.redis.RealtimeTrigger")
register_source(RedisStreamTrigger, "kray.plugins.triggers.redis:RedisStreamSource",
                "kray.redis.stream.RealtimeTrigger")
register_source(RedisPubSubTrigger, "kray.plugins.triggers.redis:RedisPubSubSource",
                "kray.redis.pubsub.RealtimeTrigger")

__all__ = ["RedisListSource", "RedisListTrigger", "RedisPubSubSource", "RedisPubSubTrigger",
           "RedisStreamSource", "RedisStreamTrigger", "payload_variables"]
