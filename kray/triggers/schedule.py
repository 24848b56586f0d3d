"""Cron ticks and which of them are due: pure functions of (cron, zone, watermark, now).

Nothing here reads a clock. The executor passes ``now`` in, so every decision (recovering
missed ticks, ``lateMaximumDelay``, backfill ranges) is tested with an injected time.

Ticks are aware UTC datetimes. A cron expression is read on the wall clock of its time zone;
around daylight-saving changes:

* a wall time that does not exist (the clock jumps forward over it) fires shifted forward by
  the jump, so a daily 02:30 job still runs once that day (at 03:30);
* a wall time that happens twice (the clock goes back) fires once, at its first occurrence,
  unless the expression fires every hour (hour field ``*``), in which case the repeated hour
  runs again, as the elapsed time demands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

NICKNAMES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_NEAR = timedelta(hours=3)  # how far to look for a daylight-saving change around an instant
_MICRO = timedelta(microseconds=1)


class Recover(StrEnum):
    """``recoverMissedSchedules``: what to do with ticks that passed while kray was down."""

    ALL = "ALL"  # start an execution for every missed tick, oldest first
    LAST = "LAST"  # start one, for the most recent missed tick
    NONE = "NONE"  # start none; carry on with the next tick


class Cron:
    """A cron expression (5 fields, 6 with seconds first, or a nickname) in a time zone.

    Not thread-safe (it steps one croniter); each executor keeps its own.

    Raises ``ValueError`` with a readable message for a bad expression or zone, so that it
    doubles as a pydantic validator.
    """

    def __init__(self, expression: str, timezone: str = "UTC", with_seconds: bool = False):
        self.expression = expression
        self.with_seconds = with_seconds
        text = " ".join(str(expression).split())
        spec = NICKNAMES.get(text.lower())
        if spec is None and text.startswith("@"):
            raise ValueError(f"unknown cron nickname '{text}'; use one of {', '.join(NICKNAMES)}")
        if spec is None:
            fields = len(text.split(" ")) if text else 0
            want = 6 if with_seconds else 5
            if fields != want:
                hint = (" (seconds first; or set withSeconds: false)" if with_seconds
                        else "; set withSeconds: true for a seconds field" if fields == 6 else "")
                raise ValueError(f"cron '{expression}' has {fields} fields, expected {want}{hint}")
            spec = text
        elif with_seconds:
            spec = "0 " + spec
        try:
            self._iter = croniter(spec, datetime(2000, 1, 1), second_at_beginning=with_seconds)
            expanded = self._iter.expanded
        except CroniterError as e:
            raise ValueError(f"invalid cron '{expression}': {e}") from None
        self.spec = spec
        # The hour field (index 1 in croniter's expansion, with or without seconds).
        hours = expanded[1]
        self.every_hour = hours == ["*"] or len(set(hours)) == 24
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{timezone}'") from None
        self.timezone = timezone
        if self.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise ValueError(f"cron '{expression}' never fires")

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.timezone!r}, with_seconds={self.with_seconds})"

    # ------------------------------------------------------------------ one tick
    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after ``t``; None when the expression never fires again."""
        anchor = t = t.astimezone(UTC)
        for _ in range(3):
            best = self._nearest(t, anchor, forward=True)
            # A tick found far away was read with the offsets in force near ``anchor``; if a
            # daylight-saving change lies near it, read again with the offsets around it.
            if best is None or abs(best - anchor) <= _NEAR or self._transition(best) is None:
                return best
            anchor = best
        return best

    def prev_before(self, t: datetime) -> datetime | None:
        """The last tick strictly before ``t``; None when there is none."""
        anchor = t = t.astimezone(UTC)
        for _ in range(3):
            best = self._nearest(t, anchor, forward=False)
            if best is None or abs(anchor - best) <= _NEAR or self._transition(best) is None:
                return best
            anchor = best
        return best

    def last_at_or_before(self, t: datetime) -> datetime | None:
        return self.prev_before(t + _MICRO)

    def ticks(self, start: datetime, end: datetime, after: datetime | None = None
              ) -> Iterator[datetime]:
        """Ticks ``t`` with ``start <= t < end`` (and ``t > after`` when given), in order."""
        floor = start - _MICRO
        tick = self.next_after(max(floor, after) if after is not None else floor)
        while tick is not None and tick < end:
            yield tick
            tick = self.next_after(tick)

    def local(self, t: datetime) -> datetime:
        """``t`` on this schedule's wall clock (aware, in its zone)."""
        return t.astimezone(self.zone)

    # ------------------------------------------------------------------ wall clock
    def _offset(self, t: datetime) -> timedelta:
        return t.astimezone(self.zone).utcoffset() or timedelta(0)

    def _transition(self, t: datetime) -> tuple[datetime, timedelta, timedelta] | None:
        """The daylight-saving change within ``_NEAR`` of ``t``, if any: (instant, offset
        before, offset after), found by bisection."""
        lo, hi = t - _NEAR, t + _NEAR
        before, after = self._offset(lo), self._offset(hi)
        if before == after:
            return None
        while hi - lo > _MICRO:
            mid = lo + (hi - lo) / 2
            if self._offset(mid) == before:
                lo = mid
            else:
                hi = mid
        return hi, before, after

    def _pieces(self, anchor: datetime) -> list[tuple[datetime | None, datetime | None,
                                                      timedelta]]:
        """Ranges of wall-clock times near ``anchor`` and the offset each is read with:
        (first wall time, end wall time, offset); an instant is ``wall - offset``."""
        change = self._transition(anchor)
        if change is None:
            return [(None, None, self._offset(anchor))]
        at, before, after = change
        naive = at.replace(tzinfo=None)
        if after > before:  # forward: the skipped wall times keep the old offset (shifted on)
            return [(None, naive + after, before), (naive + after, None, after)]
        pieces: list[tuple[datetime | None, datetime | None, timedelta]] = [
            (None, naive + before, before), (naive + before, None, after)]
        if self.every_hour:  # the repeated wall times, second pass
            pieces.append((naive + after, naive + before, after))
        return pieces

    def _nearest(self, t: datetime, anchor: datetime, *, forward: bool) -> datetime | None:
        """The tick closest to ``t`` on one side, reading wall times with the offsets in
        force near ``anchor``: one cron step per piece."""
        best: datetime | None = None
        wall_t = t.replace(tzinfo=None)
        for lo, hi, offset in self._pieces(anchor):
            if forward:
                start = wall_t + offset
                if lo is not None and lo - _MICRO > start:
                    start = lo - _MICRO
                naive = self._step(start, forward=True)
                if naive is None or (hi is not None and naive >= hi):
                    continue
            else:
                start = wall_t + offset
                if hi is not None and hi < start:
                    start = hi
                naive = self._step(start, forward=False)
                if naive is None or (lo is not None and naive < lo):
                    continue
            instant = (naive - offset).replace(tzinfo=UTC)
            if best is None or (instant < best if forward else instant > best):
                best = instant
        return best

    def _step(self, start: datetime, *, forward: bool) -> datetime | None:
        """The cron's first wall time strictly after (or before) ``start``."""
        self._iter.set_current(start, force=True)
        try:
            found: datetime = (self._iter.get_next if forward else self._iter.get_prev)(datetime)
        except CroniterBadDateError:
            return None
        return found


@dataclass(frozen=True)
class SchedulePlan:
    """What to do for one schedule trigger now."""

    fire: tuple[datetime, ...]  # ticks to start an execution for, oldest first
    late: tuple[datetime, ...]  # due ticks skipped because they are past lateMaximumDelay
    watermark: datetime  # every tick at or before it is handled (persist it)
    next_tick: datetime | None  # when to plan again
    more: bool = False  # stopped at ``limit``: plan again at once


def plan_schedule(cron: Cron, *, watermark: datetime | None, now: datetime, since: datetime,
                  recover: Recover = Recover.ALL, late_maximum_delay: timedelta | None = None,
                  limit: int = 100) -> SchedulePlan:
    """Which ticks to fire at ``now``.

    ``watermark``: the persisted instant up to which every tick was handled; None for a
    trigger never seen before, which starts from ``now`` (its past is not owed).
    ``since``: when this executor began watching the trigger. Ticks in
    ``(watermark, since]`` were missed while nobody watched: ``recover`` decides their fate.
    Later ticks are merely due. Any tick to fire that is more than ``late_maximum_delay``
    old is skipped instead. At most ``limit`` ticks are returned; ``more`` says to call again.
    """
    if watermark is None:
        return SchedulePlan((), (), now, cron.next_after(now))
    candidates: list[datetime] = []
    cursor = watermark
    if since > watermark and recover is not Recover.ALL:
        last_missed = cron.last_at_or_before(min(since, now))
        if recover is Recover.LAST and last_missed is not None and last_missed > watermark:
            candidates.append(last_missed)
        cursor = max(watermark, min(since, now))
    more = False
    tick = cron.next_after(cursor)
    while tick is not None and tick <= now:
        if len(candidates) >= limit:
            more = True
            break
        candidates.append(tick)
        tick = cron.next_after(tick)
    new_watermark = candidates[-1] if more else max(now, watermark)
    fire, late = [], []
    for t in candidates:
        if late_maximum_delay is not None and now - t > late_maximum_delay:
            late.append(t)
        else:
            fire.append(t)
    return SchedulePlan(tuple(fire), tuple(late), new_watermark,
                        cron.next_after(new_watermark), more)


def backfill_ticks(cron: Cron, *, start: datetime, end: datetime, after: datetime | None,
                   limit: int) -> tuple[list[datetime], bool]:
    """The next ``limit`` ticks of a backfill over ``[start, end)`` after the last one fired
    (``after``), and whether the backfill is then done."""
    ticks: list[datetime] = []
    for tick in cron.ticks(start, end, after):
        if len(ticks) == limit:
            return ticks, False
        ticks.append(tick)
    return ticks, True


def schedule_variables(cron: Cron, tick: datetime) -> dict[str, str | None]:
    """``trigger.date``, ``trigger.next`` and ``trigger.previous`` for a tick, as ISO-8601
    on the schedule's wall clock."""
    nxt, prev = cron.next_after(tick), cron.prev_before(tick)
    return {"date": cron.local(tick).isoformat(),
            "next": cron.local(nxt).isoformat() if nxt else None,
            "previous": cron.local(prev).isoformat() if prev else None}
