"""Small pieces shared by the MQTT, NATS and AMQP sources: a stable per-trigger name (MQTT
client id, JetStream durable), JSON-safe header values, body decoding and URL parsing.
No client library is imported here: models import this module at deploy time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from kray.triggers.firing import parse_body

#: How a message body becomes ``trigger.body``: None (kray's default) is JSON when it parses,
#: else text; Kestra's ``serdeType`` values force one reading.
Serde = Literal["JSON", "STRING", "BYTES"]


def trigger_name(context: Mapping[str, Any], prefix: str = "kray", size: int = 18) -> str:
    """A broker-side name that stays the same for one trigger across restarts (the actor's
    context has ``namespace``, ``flow_id``, ``trigger_id``), short enough for MQTT 3.1.1's
    23-character client ids, and free of characters brokers reject (``.`` in JetStream)."""
    key = "/".join(str(context.get(k, "")) for k in ("namespace", "flow_id", "trigger_id"))
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:size]}"


def decode_body(body: bytes, serde: Serde | None) -> Any:
    """``trigger.body`` of a message: see ``Serde``. JSON that does not parse stays text (a
    trigger never fails on one bad message body)."""
    if serde == "STRING":
        return body.decode("utf-8", errors="replace")
    if serde == "BYTES":
        return base64.b64encode(body).decode("ascii")
    return parse_body(body)


def json_safe(value: Any) -> Any:
    """Header/property values as JSON data: bytes become text, dates ISO strings, decimals
    floats, tables dicts (AMQP field tables hold all of these)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return str(value)


def host_port(url: str, schemes: Mapping[str, int], field: str) -> tuple[str, int, bool]:
    """``scheme://host:port`` (or ``host:port``, or ``host``) -> (host, port, tls). ``schemes``
    maps each accepted scheme to its default port; a scheme ending in ``s`` (``ssl``,
    ``mqtts``, ``amqps``) means TLS. Raises ``ValueError`` naming ``field``."""
    text = url.strip()
    if "://" not in text:
        text = f"{next(iter(schemes))}://{text}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ValueError(f"{field}: scheme {parts.scheme!r} is not one of "
                         f"{', '.join(s + '://' for s in schemes)}")
    try:
        port = parts.port or schemes[scheme]
    except ValueError as e:
        raise ValueError(f"{field}: {e}") from None
    if not parts.hostname:
        raise ValueError(f"{field}: no host in {url!r}")
    return parts.hostname, port, scheme in ("ssl", "tls", "mqtts", "amqps", "wss")



async def take_batch(queue: asyncio.Queue[Any], max_messages: int, timeout: float) -> list[Any]:
    """What a push-based client queued: the first item within ``timeout`` seconds ([] when
    none came), then whatever else is already queued, ``max_messages`` at most."""
    try:
        first = await asyncio.wait_for(queue.get(), timeout)
    except asyncio.TimeoutError:
        return []
    batch = [first]
    while len(batch) < max_messages and not queue.empty():
        batch.append(queue.get_nowait())
    return batch


__all__ = ["Serde", "decode_body", "host_port", "json_safe", "take_batch", "trigger_name"]
