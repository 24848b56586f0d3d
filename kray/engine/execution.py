"""Executions and task runs: the data the core decides on and the repository stores.

They are plain mutable dataclasses owned by one executor; the core changes them only through
``StateValue.to`` so every change goes through the transition table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kray.engine.state import State, StateValue


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def task_run_id(execution_id: str, parent_id: str | None, task_id: str, value: Any,
                iteration: int | None) -> str:
    """Deterministic id: the same task run derives the same id after an executor restart,
    so a result already written to storage is found again instead of run twice."""
    key = f"{execution_id}|{parent_id or ''}|{task_id}|{value!r}|{iteration}"
    return hashlib.blake2b(key.encode(), digest_size=11).hexdigest()


def value_key(value: Any) -> Any:
    """A hashable stand-in for a ForEach value (values may be dicts or lists)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def run_key(parent_id: str | None, task_id: str, value: Any, iteration: int | None) -> tuple:
    return (parent_id, task_id, value_key(value), iteration)


@dataclass
class Attempt:
    state: StateValue
    node: str | None = None  # where it ran (Ray node id), when known
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        hist = self.state.histories()
        return {"state": self.state.current.value, "startDate": hist[0]["date"],
                "endDate": hist[-1]["date"] if self.state.current.terminal else None,
                "histories": hist,
                "node": self.node, "error": self.error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        return cls(StateValue.from_dict({"current": d["state"], "histories": d["histories"]}),
                   d.get("node"), d.get("error"))


@dataclass
class TaskRun:
    id: str
    execution_id: str
    task_id: str
    state: StateValue
    parent_task_run_id: str | None = None
    value: Any = None  # the ForEach value this run belongs to (None outside ForEach)
    iteration: int | None = None  # LoopUntil iteration
    attempts: list[Attempt] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # last error message, already masked
    # Bookkeeping of the flowable that owns this run (ForEach values, If result...): persisted,
    # never shown as outputs.
    meta: dict[str, Any] = field(default_factory=dict)
    # Derived, never persisted: which children already ended (terminal states never change
    # but on restart, which clears it), so a walk skips them.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        hist = self.state.histories()
        return {"id": self.id, "executionId": self.execution_id, "taskId": self.task_id,
                "parentTaskRunId": self.parent_task_run_id, "value": self.value,
                "iteration": self.iteration, "state": self.state.current.value,
                "startDate": hist[0]["date"],
                "endDate": hist[-1]["date"] if self.state.current.terminal else None,
                "histories": hist,
                "attempts": [a.to_dict() for a in self.attempts], "outputs": self.outputs,
                "error": self.error, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRun:
        return cls(id=d["id"], execution_id=d["executionId"], task_id=d["taskId"],
                   state=StateValue.from_dict({"current": d["state"], "histories": d["histories"]}),
                   parent_task_run_id=d.get("parentTaskRunId"), value=d.get("value"),
                   iteration=d.get("iteration"),
                   attempts=[Attempt.from_dict(a) for a in d.get("attempts", [])],
                   outputs=d.get("outputs") or {}, error=d.get("error"), meta=d.get("meta") or {})


@dataclass
class Execution:
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: StateValue
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None  # trigger variables (`trigger.*`)
    task_runs: list[TaskRun] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # the flow's declared outputs
    parent_id: str | None = None  # replay: the execution this one replays
    original_id: str | None = None
    parent_task_run: dict[str, str] | None = None  # subflow: {executionId, taskRunId}
    error: str | None = None
    # Timers the core asked for and that have not fired: key -> ISO due date. Persisted so a
    # restarted executor re-arms them.
    timers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # engine bookkeeping (retry attempt)
    _index: dict[str, TaskRun] = field(default_factory=dict, repr=False, compare=False)

    _by_key: dict[tuple, TaskRun] = field(default_factory=dict, repr=False, compare=False)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {tr.id: tr for tr in self.task_runs}
        self._by_key = {run_key(tr.parent_task_run_id, tr.task_id, tr.value, tr.iteration): tr
                        for tr in self.task_runs}
        if self.original_id is None:
            self.original_id = self.id

    # -- task runs -----------------------------------------------------------------------
    def add(self, tr: TaskRun) -> TaskRun:
        self.task_runs.append(tr)
        self._index[tr.id] = tr
        self._by_key[run_key(tr.parent_task_run_id, tr.task_id, tr.value, tr.iteration)] = tr
        return tr

    def get(self, task_run_id: str) -> TaskRun | None:
        return self._index.get(task_run_id)

    def find(self, task_id: str, parent_id: str | None = None, value: Any = None,
             iteration: int | None = None) -> TaskRun | None:
        return self._by_key.get(run_key(parent_id, task_id, value, iteration))

    def runs_of(self, task_id: str) -> list[TaskRun]:
        return [tr for tr in self.task_runs if tr.task_id == task_id]

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "namespace": self.namespace, "flowId": self.flow_id,
                "flowRevision": self.flow_revision, "state": self.state.current.value,
                "startDate": _iso(self.state.start), "endDate": _iso(self.state.end),
                "histories": self.state.to_dict()["histories"], "inputs": self.inputs,
                "labels": self.labels, "trigger": self.trigger, "outputs": self.outputs,
                "parentId": self.parent_id, "originalId": self.original_id,
                "parentTaskRun": self.parent_task_run, "error": self.error,
                "timers": self.timers, "metadata": self.metadata,
                "taskRuns": [tr.to_dict() for tr in self.task_runs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Execution:
        return cls(id=d["id"], namespace=d["namespace"], flow_id=d["flowId"],
                   flow_revision=d.get("flowRevision", 1),
                   state=StateValue.from_dict({"current": d["state"], "histories": d["histories"]}),
                   inputs=d.get("inputs") or {}, labels=d.get("labels") or {},
                   trigger=d.get("trigger"), outputs=d.get("outputs") or {},
                   parent_id=d.get("parentId"), original_id=d.get("originalId"),
                   parent_task_run=d.get("parentTaskRun"), error=d.get("error"),
                   timers=d.get("timers") or {}, metadata=d.get("metadata") or {},
                   task_runs=[TaskRun.from_dict(t) for t in d.get("taskRuns", [])])
