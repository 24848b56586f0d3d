"""Trigger state in the repository's ``triggers`` table (migration 2).

One row per trigger of a deployed flow: whether it was disabled (by the API or ``stopAfter``),
a schedule's watermark (every tick at or before it was handled) and next tick, the last
execution it started, its last error, and per-type progress as JSON (a Flow trigger's
preconditions, a running backfill). Written by the executor only, like everything in the
repository; small rows, so plain upserts in one transaction per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kray.storage.repository import Repository, dumps, loads, utc

TriggerKey = tuple[str, str, str]  # namespace, flow id, trigger id


@dataclass
class TriggerState:
    namespace: str
    flow_id: str
    trigger_id: str
    type: str
    disabled: bool = False
    watermark: datetime | None = None
    next_tick: datetime | None = None
    last_execution_id: str | None = None
    last_fired: datetime | None = None
    last_error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    updated: datetime | None = None

    @property
    def key(self) -> TriggerKey:
        return (self.namespace, self.flow_id, self.trigger_id)

    def to_dict(self) -> dict[str, Any]:
        """As the API shows it (Kestra's trigger context names where they exist)."""
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d is not None else None
        return {"namespace": self.namespace, "flowId": self.flow_id,
                "triggerId": self.trigger_id, "type": self.type, "disabled": self.disabled,
                "date": iso(self.watermark), "nextExecutionDate": iso(self.next_tick),
                "executionId": self.last_execution_id, "lastFired": iso(self.last_fired),
                "lastError": self.last_error, "backfill": self.data.get("backfill"),
                "lastBackfill": self.data.get("lastBackfill"),
                "preconditions": self.data.get("preconditions"),
                "stoppedBy": self.data.get("stoppedBy"), "updated": iso(self.updated)}


_COLUMNS = ("namespace, flow_id, trigger_id, type, disabled, {w}, {n}, last_execution_id, "
            "{f}, last_error, data, {u}")


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def load_states(repo: Repository) -> list[TriggerState]:
    """Every trigger's state."""
    select = _COLUMNS.format(w=utc("watermark"), n=utc("next_tick"), f=utc("last_fired"),
                             u=utc("updated"))
    with repo.transaction() as con:
        rows = con.execute(f"SELECT {select} FROM triggers "
                           "ORDER BY namespace, flow_id, trigger_id").fetchall()
    return [TriggerState(r[0], r[1], r[2], r[3], bool(r[4]), _aware(r[5]), _aware(r[6]), r[7],
                         _aware(r[8]), r[9], loads(r[10]) or {}, _aware(r[11])) for r in rows]


def save_states(repo: Repository, states: Iterable[TriggerState]) -> None:
    """Upsert these states, in one transaction."""
    now = datetime.now(UTC)
    rows = []
    for s in {state.key: state for state in states}.values():
        s.updated = now
        rows.append([s.namespace, s.flow_id, s.trigger_id, s.type, s.disabled, s.watermark,
                     s.next_tick, s.last_execution_id, s.last_fired, s.last_error,
                     dumps(s.data), now])
    if not rows:
        return
    with repo.transaction() as con:
        con.executemany("INSERT OR REPLACE INTO triggers VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def delete_states(repo: Repository, keys: Sequence[TriggerKey]) -> None:
    """Forget these triggers (their flow, or they, no longer exist)."""
    if not keys:
        return
    with repo.transaction() as con:
        con.executemany("DELETE FROM triggers WHERE namespace = ? AND flow_id = ? "
                        "AND trigger_id = ?", [list(k) for k in keys])


__all__ = ["TriggerKey", "TriggerState", "delete_states", "load_states", "save_states"]
