"""States of executions and task runs, and the only transitions allowed between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kray.errors import IllegalTransition


class State(StrEnum):
    CREATED = "CREATED"  # accepted and durable, nothing started yet
    QUEUED = "QUEUED"  # waiting for a flow concurrency slot
    RUNNING = "RUNNING"  # started: a worker has it, or a flowable is resolving children
    PAUSED = "PAUSED"  # waiting for a resume or a delay (Pause task)
    RESTARTED = "RESTARTED"  # a terminal execution or task run asked to run again
    KILLING = "KILLING"  # kill requested, children being stopped
    SUCCESS = "SUCCESS"  # ended well
    WARNING = "WARNING"  # ended, with an allowed failure or a warning
    FAILED = "FAILED"  # ended badly
    KILLED = "KILLED"  # ended by a kill
    CANCELLED = "CANCELLED"  # never started: cancelled by a concurrency policy
    RETRYING = "RETRYING"  # failed, another attempt is scheduled
    RETRIED = "RETRIED"  # failed and replaced by a new execution (CREATE_NEW_EXECUTION)
    SKIPPED = "SKIPPED"  # not run: runIf false, disabled, or a branch not taken

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def failed(self) -> bool:
        return self in FAILURES


TERMINAL = frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.KILLED,
                      State.CANCELLED, State.RETRIED, State.SKIPPED})
FAILURES = frozenset({State.FAILED, State.KILLED})

_ENDINGS = {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED}
# A terminal state can be changed to another terminal one by a user (Kestra's "change status").
_CHANGE_STATUS = {State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED}

TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.QUEUED, State.RUNNING, State.SKIPPED, State.CANCELLED,
                              State.FAILED, State.KILLING, State.KILLED, State.PAUSED}),
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED, State.KILLING, State.KILLED,
                             State.FAILED}),
    State.RUNNING: frozenset(_ENDINGS | {State.PAUSED, State.KILLING, State.RETRYING,
                                         State.RETRIED}),
    State.PAUSED: frozenset({State.RUNNING, State.KILLING, State.KILLED, State.FAILED,
                             State.SUCCESS, State.WARNING, State.RESTARTED}),
    State.RESTARTED: frozenset({State.RUNNING, State.CREATED, State.KILLING, State.KILLED}),
    State.KILLING: frozenset({State.KILLED, State.FAILED}),
    State.RETRYING: frozenset({State.RUNNING, State.KILLING, State.KILLED, State.FAILED,
                               State.RETRIED}),
    State.SUCCESS: frozenset((_CHANGE_STATUS - {State.SUCCESS}) | {State.RESTARTED}),
    State.WARNING: frozenset((_CHANGE_STATUS - {State.WARNING}) | {State.RESTARTED}),
    State.FAILED: frozenset((_CHANGE_STATUS - {State.FAILED}) | {State.RESTARTED,
                                                                 State.RETRIED}),
    State.KILLED: frozenset((_CHANGE_STATUS - {State.KILLED}) | {State.RESTARTED}),
    State.CANCELLED: frozenset(_CHANGE_STATUS - {State.CANCELLED}),
    State.RETRIED: frozenset(),
    State.SKIPPED: frozenset(),
}


@dataclass(frozen=True)
class StateValue:
    """An immutable state with its timestamped history (oldest first)."""

    current: State
    history: tuple[tuple[State, datetime], ...] = field(default=())
    # The history as JSON-ready dicts, extended by one entry per transition: serialising an
    # execution of thousands of task runs must not re-format every timestamp every time.
    _dicts: tuple[dict[str, str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def new(cls, now: datetime, state: State = State.CREATED) -> StateValue:
        return cls(state, ((state, now),), (_entry(state, now),))

    def to(self, state: State, now: datetime) -> StateValue:
        if state not in TRANSITIONS[self.current]:
            raise IllegalTransition(f"{self.current} -> {state} is not allowed")
        return StateValue(state, self.history + ((state, now),),
                          self._dicts + (_entry(state, now),))

    @property
    def start(self) -> datetime:
        return self.history[0][1]

    @property
    def end(self) -> datetime | None:
        return self.history[-1][1] if self.current.terminal else None

    def first(self, state: State) -> datetime | None:
        return next((t for s, t in self.history if s == state), None)

    def histories(self) -> list[dict[str, str]]:
        if len(self._dicts) != len(self.history):
            return [_entry(s, t) for s, t in self.history]
        return list(self._dicts)

    def to_dict(self) -> dict[str, object]:
        return {"current": self.current.value, "histories": self.histories()}

    @classmethod
    def from_dict(cls, data: dict) -> StateValue:
        hist = tuple((State(h["state"]), datetime.fromisoformat(h["date"]))
                     for h in data["histories"])
        return cls(State(data["current"]), hist, tuple(_entry(s, t) for s, t in hist))


def _entry(state: State, when: datetime) -> dict[str, str]:
    return {"state": state.value, "date": when.isoformat()}


def merge_child_states(states: list[State]) -> State:
    """The state a flowable ends in, given its children's terminal states (Kestra's rule)."""
    if any(s == State.FAILED for s in states):
        return State.FAILED
    if any(s == State.KILLED for s in states):
        return State.KILLED
    if any(s == State.WARNING for s in states):
        return State.WARNING
    return State.SUCCESS
