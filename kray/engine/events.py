"""What happens to an execution (events, into the core) and what the core asks for (commands,
out of it). Plain frozen dataclasses: easy to log, to test, and to send over Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kray.engine.state import State

# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    """Run the execution (it was just created, or it leaves the concurrency queue)."""


@dataclass(frozen=True)
class TaskResult:
    """A worker finished an attempt."""

    task_run_id: str
    attempt: int  # 1-based
    state: State  # SUCCESS, WARNING or FAILED
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    effects: dict[str, Any] = field(default_factory=dict)  # labels, exit
    node: str | None = None
    lost: bool = False  # the worker or its node died: not the task's fault


@dataclass(frozen=True)
class TimerFired:
    key: str


@dataclass(frozen=True)
class Kill:
    """Kill the execution and everything it started."""


@dataclass(frozen=True)
class Resume:
    """Resume a PAUSED execution; ``inputs`` are the Pause task's ``onResume`` values."""

    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubflowEnded:
    task_run_id: str
    execution_id: str
    state: State
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Restart:
    """Run a failed (or killed) execution again: same id, failed task runs get a new attempt."""


@dataclass(frozen=True)
class Batch:
    """Several events handled together, then one pass of progress: results that arrive
    together cost one walk of the execution, not one each."""

    events: tuple[Event, ...]


Event = Start | TaskResult | TimerFired | Kill | Resume | SubflowEnded | Restart | Batch

# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class SubmitTask:
    """Run one attempt of a runnable task run on a worker."""

    task_run_id: str
    attempt: int
    task_id: str
    variables: dict[str, Any]  # the template context for this task run
    group: str | None = None  # a WorkingDirectory task run id: run on that group's worker


@dataclass(frozen=True)
class CancelTask:
    """Stop a running attempt (timeout, kill): the worker process is really stopped."""

    task_run_id: str
    attempt: int


@dataclass(frozen=True)
class SetTimer:
    key: str
    at: datetime


@dataclass(frozen=True)
class OpenGroup:
    """A WorkingDirectory starts: its children share one folder on one worker."""

    task_run_id: str
    task_id: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class CloseGroup:
    task_run_id: str


@dataclass(frozen=True)
class CreateSubflow:
    task_run_id: str
    execution_id: str  # pre-computed, deterministic
    namespace: str
    flow_id: str
    revision: int | None
    inputs: dict[str, Any]
    labels: dict[str, str]
    wait: bool


@dataclass(frozen=True)
class KillExecution:
    execution_id: str


@dataclass(frozen=True)
class RetryExecution:
    """CREATE_NEW_EXECUTION retry: start a new execution of the same flow and inputs."""

    attempt: int  # the new execution's attempt number (2 for the first retry)
    at: datetime


@dataclass(frozen=True)
class ExecutionEnded:
    state: State


Command = (SubmitTask | CancelTask | SetTimer | OpenGroup | CloseGroup | CreateSubflow
           | KillExecution | RetryExecution | ExecutionEnded)
