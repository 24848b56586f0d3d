"""What every polling source shares: when a poll is due, a poll's stable id, and how the
trigger's dynamic properties are rendered.

Polls fall on a grid: the slots ``k * interval`` since the Unix epoch. A poll belongs to the
slot it started in, and its messages are named after that slot (``poll/<slot, ISO-8601>``),
so a poll that is retried after the actor died before its position was saved (same slot)
asks the executor for the same id, which the executor has already seen: no second
execution. The position is the last slot whose poll was acknowledged (or found nothing);
polls missed while the trigger was stopped are not made up for (the next poll sees the
present state of the world, which is what a poll is for).
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kray.triggers.sources.base import Message, Source, SourceError

_US = 1_000_000
#: A fetch this close (seconds) to the next slot waits for it even past its timeout: a caller
#: pacing polls on its own clock must not skip a whole interval by arriving a hair early.
EARLY = 0.05


def slot_of(now_us: int, interval_us: int) -> int:
    """The start of the grid slot holding ``now_us`` (microseconds since the epoch)."""
    return now_us - now_us % interval_us


def iso_us(us: int) -> str:
    """Microseconds since the epoch as ISO-8601 in UTC (``2024-01-01T00:00:00.200000+00:00``)."""
    return datetime.fromtimestamp(us / _US, UTC).isoformat()


def parse_iso_us(text: Any) -> int | None:
    """The inverse of ``iso_us``; None for anything that is not an ISO-8601 instant."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def poll_id(slot_us: int) -> str:
    return f"poll/{iso_us(slot_us)}"


class PollingSource(Source):
    """A ``Source`` that looks every ``trigger.interval``: ``fetch`` waits (at most its
    ``timeout``) until the next slot is due, then ``poll``s once.

    Subclasses implement ``poll``. The base keeps ``lastPoll`` (the position): it moves on
    when a poll found nothing, or when the messages of a poll are acknowledged, so a poll
    whose executions were never made durable is asked again after a restart.
    ``more_pending`` set by ``poll`` (a file listing cut at ``maxFiles``) makes the next
    ``fetch`` poll again at once instead of waiting for the next slot.
    """

    clock: Callable[[], float] = staticmethod(time.time)  # type: ignore[assignment]

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.interval_us = max(1, int(trigger.interval.total_seconds() * _US))
        self.done_us = parse_iso_us((position or {}).get("lastPoll"))
        self.polled_us = self.done_us  # the last slot polled by this source
        self.more_pending = False

    def now_us(self) -> int:
        return int(self.clock() * _US)

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        slot = self._due_slot()
        if slot is None:
            assert self.polled_us is not None
            wait = (self.polled_us + self.interval_us - self.now_us()) / _US
            if wait > max(timeout, EARLY):
                await asyncio.sleep(max(0.0, timeout))
                return []
            await asyncio.sleep(max(0.0, wait))
            slot = self._due_slot()
            if slot is None:  # woke a hair early
                return []
        self.polled_us, self.more_pending = slot, False
        messages = await self.poll(slot, max(1, max_messages))
        if not messages and not self.more_pending:
            self._mark_done(slot)
        return messages

    def _due_slot(self) -> int | None:
        slot = slot_of(self.now_us(), self.interval_us)
        if self.more_pending or self.polled_us is None or slot > self.polled_us:
            return slot
        return None

    def _mark_done(self, slot: int) -> None:
        if self.done_us is None or slot > self.done_us:
            self.done_us = slot

    async def ack(self, messages: list[Message]) -> None:
        for message in messages:
            slot = message.token if isinstance(message.token, int) else None
            if slot is not None:
                self._mark_done(slot)

    def position(self) -> dict[str, Any] | None:
        return None if self.done_us is None else {"lastPoll": iso_us(self.done_us)}

    @abstractmethod
    async def poll(self, slot_us: int, max_messages: int) -> list[Message]:
        """Look once, for the slot starting at ``slot_us``; raise ``SourceError`` when the
        other side cannot be reached."""


# -- conditions and secrets ---------------------------------------------------------------

class Renderer:
    """What a polling source does with templates and secrets once it runs.

    A trigger's properties reach the source already rendered (the executor renders them,
    ``secret()`` included, when the actor asks for its configuration). The one template a
    source renders itself is a condition on what a poll brought back (``responseCondition``):
    the template comes from the flow's source, the response is passed as data only, never
    compiled. ``hide`` registers values (passwords, tokens) that every error message the
    source raises must not show."""

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        from kray.storage.secrets import Masker
        from kray.templating import TemplateEngine

        context = context or {}
        self.engine = context.get("engine") or TemplateEngine()
        self.masker = Masker()
        self.variables = {"flow": {"namespace": context.get("namespace"),
                                   "id": context.get("flow_id")},
                          "trigger": {"id": context.get("trigger_id")}}

    def hide(self, *values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value:
                self.masker.add(value)

    def condition(self, template: str, data: Mapping[str, Any], field: str) -> bool:
        """Whether ``template`` holds with ``data`` (Kestra's truthiness, as ``runIf``)."""
        from kray.templating import is_truthy

        try:
            value = self.engine.evaluate(template, {**self.variables, **data})
            return is_truthy(value)
        except Exception as e:  # noqa: BLE001 - a bad condition is the trigger's error
            raise SourceError(f"{field}: {self.mask(str(e))}") from None

    def mask(self, text: str) -> str:
        return self.masker.mask(text)


# -- files of a trigger ------------------------------------------------------------------

def trigger_storage(context: dict[str, Any]) -> Any:
    """The executor's ``InternalStorage`` as the trigger actor hands it over (``storage``, or
    ``storage_url`` with ``storage_options``); None when it did not."""
    storage = context.get("storage")
    if storage is not None:
        return storage
    url = context.get("storage_url")
    if not url:
        return None
    from kray.storage.internal import InternalStorage

    return InternalStorage(url, **(context.get("storage_options") or {}))


def trigger_folder(context: dict[str, Any]) -> str:
    """``<namespace as folders>/<flow>/triggers/<trigger>``: where a trigger's files go."""
    namespace = str(context.get("namespace") or "_").replace(".", "/")
    flow_id, trigger_id = context.get("flow_id") or "_", context.get("trigger_id") or "_"
    return f"{namespace}/{flow_id}/triggers/{trigger_id}"


__all__ = ["PollingSource", "Renderer", "iso_us", "parse_iso_us", "poll_id", "slot_of",
           "trigger_folder", "trigger_storage"]
