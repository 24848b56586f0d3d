"""Response classes: JSON through orjson, and Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse


def _default(value: Any) -> Any:
    return str(value)


class JSON(Response):
    """JSON encoded by orjson: about ten times faster than the stdlib on execution documents.
    NaN and infinities become null; non-string keys are written as strings."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def encode(content: Any) -> bytes:
    try:
        return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits: the stdlib encoder takes it
        from kray.storage.repository import dumps
        return dumps(content).encode()


def sse_event(event: str, data: Any, event_id: int | str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` as one line of JSON."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + encode(data) + b"\n\n"


class SSE(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes]):
        super().__init__(events, media_type=self.media_type,
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


__all__ = ["JSON", "SSE", "sse_event"]
