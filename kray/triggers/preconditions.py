"""Flow-trigger preconditions: fire once every listed upstream flow reached its states within
a time window. Pure: ``advance(preconditions, progress, ended, now)`` returns whether to fire
and the new progress, which the executor persists, so a restart forgets nothing.

Progress is a JSON-able dict: ``{"window": ISO start or None, "met": {key: ISO when}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from kray.engine.state import TERMINAL, State
from kray.task import Model

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WindowType(StrEnum):
    DURATION_WINDOW = "DURATION_WINDOW"  # fixed windows of `window`, shifted by windowAdvance
    SLIDING_WINDOW = "SLIDING_WINDOW"  # the last `window` before now
    DAILY_TIME_DEADLINE = "DAILY_TIME_DEADLINE"  # each day, from midnight until `deadline`
    DAILY_TIME_WINDOW = "DAILY_TIME_WINDOW"  # each day, from `startTime` until `endTime`


class TimeWindow(Model):
    """When the upstream executions must all have happened (UTC clock)."""

    type: WindowType = WindowType.DURATION_WINDOW
    window: timedelta | None = None  # DURATION_WINDOW and SLIDING_WINDOW, default 1 day
    window_advance: timedelta | None = None  # DURATION_WINDOW: offset of the windows' start
    deadline: time | None = None  # DAILY_TIME_DEADLINE
    start_time: time | None = None  # DAILY_TIME_WINDOW
    end_time: time | None = None  # DAILY_TIME_WINDOW

    @model_validator(mode="after")
    def _fits_type(self) -> TimeWindow:
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("window must be a positive duration")
        if self.type is WindowType.DAILY_TIME_DEADLINE and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE window needs a deadline")
        if self.type is WindowType.DAILY_TIME_WINDOW and (self.start_time is None
                                                          or self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW window needs startTime and endTime")
        return self


class UpstreamFlow(Model):
    namespace: str
    flow_id: str
    states: list[State] = Field(default_factory=list)  # empty: any terminal state
    labels: dict[str, str] = Field(default_factory=dict)

    def matches(self, ended: Mapping[str, Any]) -> bool:
        state = State(ended["state"])
        have = ended.get("labels") or {}
        return (ended["namespace"] == self.namespace and ended["flowId"] == self.flow_id
                and (state in self.states if self.states else state in TERMINAL)
                and all(k in have and str(have[k]) == v for k, v in self.labels.items()))


class Preconditions(Model):
    id: str | None = None
    flows: list[UpstreamFlow] = Field(min_length=1)
    time_window: TimeWindow = Field(default_factory=TimeWindow)
    reset_on_success: bool = True


def key(index: int, flow: UpstreamFlow) -> str:
    return f"{index}:{flow.namespace}/{flow.flow_id}"


def window(tw: TimeWindow, now: datetime) -> tuple[datetime, datetime] | None:
    """The window ``now`` falls in, as [start, end); None when now is outside every window
    (a daily window or deadline not open at this hour)."""
    if tw.type is WindowType.SLIDING_WINDOW:
        return now - (tw.window or timedelta(days=1)), now + timedelta(microseconds=1)
    if tw.type is WindowType.DURATION_WINDOW:
        size = tw.window or timedelta(days=1)
        advance = tw.window_advance or timedelta(0)
        start = _EPOCH + advance + ((now - _EPOCH - advance) // size) * size
        return start, start + size
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if tw.type is WindowType.DAILY_TIME_DEADLINE:  # the model requires the times it needs
        start, end = midnight, _at(midnight, tw.deadline or time.max)
    else:
        start = _at(midnight, tw.start_time or time.min)
        end = _at(midnight, tw.end_time or time.max)
    return (start, end) if start <= now < end else None


def _at(midnight: datetime, t: time) -> datetime:
    moment = midnight.replace(hour=t.hour, minute=t.minute, second=t.second,
                              microsecond=t.microsecond)
    offset = t.utcoffset() if t.tzinfo is not None else None
    return moment - offset if offset is not None else moment


def advance(pre: Preconditions, progress: Mapping[str, Any] | None, ended: Mapping[str, Any],
            now: datetime) -> tuple[bool, dict[str, Any]]:
    """Record that ``ended`` (an execution that just ended: namespace, flowId, state,
    labels) happened at ``now``; return (fire?, new progress).

    Progress left from an older window is dropped; a SLIDING_WINDOW forgets each upstream
    execution once it is older than the window. With ``resetOnSuccess`` (the default) firing
    starts the count again; without it, every further matching execution in the window fires.
    """
    bounds = window(pre.time_window, now)
    old = dict(progress or {})
    met: dict[str, str] = dict(old.get("met") or {})
    if bounds is None:
        return False, {"window": None, "met": {}}
    start, _ = bounds
    if pre.time_window.type is WindowType.SLIDING_WINDOW:
        met = {k: v for k, v in met.items() if datetime.fromisoformat(v) >= start}
        window_start = None
    else:
        window_start = start.isoformat()
        if old.get("window") != window_start:
            met = {}
    matched = False
    for i, flow in enumerate(pre.flows):
        if flow.matches(ended):
            met[key(i, flow)] = now.isoformat()
            matched = True
    fire = matched and all(key(i, f) in met for i, f in enumerate(pre.flows))
    if fire and pre.reset_on_success:
        met = {}
    return fire, {"window": window_start, "met": met}
