"""Flowable core tasks: they decide which child task runs come next, inside the executor.

Each ``advance`` is idempotent: the core calls it again after every change below it, and it
must only create what is missing and report the state once its children are done.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from kray.engine import events as ev
from kray.engine.state import FAILURES, State, merge_child_states
from kray.errors import KrayError, TaskError
from kray.flow.model import Input
from kray.task import FlowableTask, Model, Task

if TYPE_CHECKING:
    from kray.engine.execution import TaskRun
    from kray.engine.scope import Scope

K = "io.kestra.plugin.core.flow."
OLD = "io.kestra.core.tasks.flows."


def _truthy(value: Any) -> bool:
    from kray.templating import is_truthy
    return is_truthy(value)


class Sequential(FlowableTask):
    """Run ``tasks`` one after another; ``errors`` if one fails; ``finally`` always."""

    type_name = "kray.core.flow.Sequential"
    aliases = (K + "Sequential", OLD + "Sequential")

    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, self.errors, self.finally_]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        return scope.run_block(self.tasks, run, errors=self.errors, finally_=self.finally_)


class Parallel(Sequential):
    """Run ``tasks`` at once, at most ``concurrent`` at a time (0: no limit)."""

    type_name = "kray.core.flow.Parallel"
    aliases = (K + "Parallel", OLD + "Parallel")

    concurrent: int = Field(0, ge=0)

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        return scope.run_block(self.tasks, run, errors=self.errors, finally_=self.finally_,
                               limit=self.concurrent)


class AllowFailure(Sequential):
    """A Sequential whose failure ends as WARNING, so the flow goes on."""

    type_name = "kray.core.flow.AllowFailure"
    aliases = (K + "AllowFailure", OLD + "AllowFailure")

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        state = super().advance(scope, run)
        return State.WARNING if state in FAILURES else state


class If(FlowableTask):
    """``then`` when ``condition`` renders truthy, else ``else``. Output ``evaluationResult``."""

    type_name = "kray.core.flow.If"
    aliases = (K + "If", OLD + "If")

    condition: str | bool
    then: list[Task] = Field(min_length=1)
    else_: list[Task] = Field(default_factory=list, alias="else")
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    def child_lists(self) -> list[list[Task]]:
        return [self.then, self.else_, self.errors, self.finally_]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "result" not in run.meta:
            run.meta["result"] = _truthy(scope.evaluate(self.condition, run, self))
            scope.set_outputs(run, {"evaluationResult": run.meta["result"]})
        branch = self.then if run.meta["result"] else self.else_
        return scope.run_block(branch, run, errors=self.errors, finally_=self.finally_)


class Switch(FlowableTask):
    """Run the case matching ``value`` (or ``defaults``); no match and no defaults fails."""

    type_name = "kray.core.flow.Switch"
    aliases = (K + "Switch", OLD + "Switch")

    value: Any
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    @model_validator(mode="before")
    @classmethod
    def _case_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("cases"), dict):
            data = {**data, "cases": {str(k): v for k, v in data["cases"].items()}}
        return data

    def child_lists(self) -> list[list[Task]]:
        return [*self.cases.values(), self.defaults, self.errors, self.finally_]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "case" not in run.meta:
            rendered = scope.evaluate(self.value, run, self)
            key = rendered if isinstance(rendered, str) else json.dumps(rendered)
            if isinstance(rendered, bool):
                key = "true" if rendered else "false"
            matched = key in self.cases
            if not matched and not self.defaults:
                raise TaskError(f"no case matches value '{key}' and there are no defaults")
            run.meta["case"] = key if matched else None
            scope.set_outputs(run, {"value": key, "defaults": not matched})
        case = run.meta["case"]
        branch = self.cases[case] if case is not None else self.defaults
        return scope.run_block(branch, run, errors=self.errors, finally_=self.finally_)


def _parse_values(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise TaskError(f"values must be a list or a JSON array, got {raw!r}") from e
    if not isinstance(raw, list):
        raise TaskError(f"values must be a list, got {type(raw).__name__}")
    return raw


class ForEach(FlowableTask):
    """Run ``tasks`` once per value, ``concurrencyLimit`` values at a time (0: no limit).
    Children see ``taskrun.value``; outputs are addressed ``outputs.child[value]``."""

    type_name = "kray.core.flow.ForEach"
    aliases = (K + "ForEach",)

    values: Any
    concurrency_limit: int = Field(1, ge=0)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, self.errors, self.finally_]

    def _limit(self) -> int:
        return self.concurrency_limit

    def _values(self) -> Any:
        return self.values

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "values" not in run.meta:
            run.meta["values"] = _parse_values(scope.evaluate(self._values(), run, self))
        first = next((t for t in self.tasks if not t.disabled), None)
        if first is None:
            return State.SUCCESS
        limit, active, states, waiting = self._limit(), 0, [], False
        settled = run.cache.setdefault("settled", {})  # value index -> terminal state
        for index, value in enumerate(run.meta["values"]):
            if index in settled:
                states.append(settled[index])
                continue
            if scope.find(first, run, value) is None:
                if any(s in FAILURES for s in states):
                    break  # fail fast: no new value starts after one failed
                if limit and active >= limit:
                    waiting = True
                    break
            state = scope.run_list(self.tasks, run, value=value)
            if state is None:
                active += 1
            else:
                settled[index] = state
                states.append(state)
        if active or waiting:
            return None
        state = merge_child_states(states)
        if state in FAILURES and self.errors:
            if scope.run_list(self.errors, run) is None:
                return None
        if self.finally_:
            fin = scope.run_list(self.finally_, run)
            if fin is None:
                return None
            state = merge_child_states([state, fin])
        return state


class EachSequential(ForEach):
    """Older form of ForEach (``value``, one at a time)."""

    type_name = "kray.core.flow.EachSequential"
    aliases = (K + "EachSequential", OLD + "EachSequential")

    values: Any = None
    value: Any = None

    def _values(self) -> Any:
        return self.value if self.value is not None else self.values

    def _limit(self) -> int:
        return 1


class EachParallel(EachSequential):
    """Older form of ForEach (``value``, ``concurrent`` at a time, 0: no limit)."""

    type_name = "kray.core.flow.EachParallel"
    aliases = (K + "EachParallel", OLD + "EachParallel")

    concurrent: int = Field(0, ge=0)

    def _limit(self) -> int:
        return self.concurrent


class DagTask(Model):
    task: Task
    depends_on: list[str] = Field(default_factory=list)


class Dag(FlowableTask):
    """Run each task once all of its ``dependsOn`` succeeded, ``concurrent`` at a time."""

    type_name = "kray.core.flow.Dag"
    aliases = (K + "Dag", OLD + "Dag")

    tasks: list[DagTask] = Field(min_length=1)
    concurrent: int = Field(0, ge=0)

    def child_lists(self) -> list[list[Task]]:
        return [[d.task for d in self.tasks]]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        tasks = [d for d in self.tasks if not d.task.disabled]
        states: dict[str, State | None] = {
            d.task.id: scope.run_one(d.task, run, start=False) for d in tasks}
        active = sum(1 for d in tasks if states[d.task.id] is None
                     and scope.find(d.task, run) is not None)
        blocked, progressed = False, True
        while progressed:  # a task that ends at once (skipped) may unblock one listed before it
            progressed, blocked = False, False
            for d in tasks:
                if scope.find(d.task, run) is not None:
                    continue
                deps = [states.get(x, State.SUCCESS) for x in d.depends_on]
                if any(s in FAILURES for s in deps):
                    blocked = True
                    continue
                if any(s is None for s in deps) or (self.concurrent and active >= self.concurrent):
                    continue
                states[d.task.id] = scope.run_one(d.task, run)
                progressed = True
                if states[d.task.id] is None:
                    active += 1
        if active:
            return None
        done = [s for s in states.values() if s is not None]
        return merge_child_states(done + ([State.FAILED] if blocked else []))


class Subflow(FlowableTask):
    """Start an execution of another flow; with ``wait``, end as it ends."""

    type_name = "kray.core.flow.Subflow"
    aliases = (K + "Subflow", OLD + "Subflow", "io.kestra.core.tasks.flows.Flow",
               "io.kestra.plugin.core.flow.Flow")

    namespace: str
    flow_id: str
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)
    wait: bool = True
    transmit_failed: bool = True
    inherit_labels: bool = False
    schedule_date: str | None = None

    def child_lists(self) -> list[list[Task]]:
        return []

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "child" not in run.meta:
            child_id = hashlib.blake2b(f"{run.id}:{len(run.attempts)}".encode(),
                                       digest_size=11).hexdigest()
            labels = self.labels
            if isinstance(labels, list):
                labels = {i["key"]: i["value"] for i in labels}
            labels = dict(scope.render_value(labels, run, self))
            if self.inherit_labels:
                labels = {**scope.execution.labels, **labels}
            scope.emit(ev.CreateSubflow(
                run.id, child_id, scope.render_value(self.namespace, run, self),
                scope.render_value(self.flow_id, run, self), self.revision,
                scope.render_value(self.inputs, run, self), labels, self.wait))
            run.meta["child"] = child_id
            scope.set_outputs(run, {"executionId": child_id})
            if not self.wait:
                return State.SUCCESS
        ended = run.meta.get("ended")
        if ended is None:
            return None
        child_state = State(ended["state"])
        scope.set_outputs(run, {"executionId": run.meta["child"], "state": child_state.value,
                                "outputs": ended.get("outputs") or {}})
        if ended.get("error"):
            run.error = ended["error"]
        if child_state in (State.SUCCESS, State.SKIPPED) or not self.transmit_failed:
            return State.SUCCESS
        return child_state if child_state in (State.WARNING, State.KILLED) else State.FAILED


class Pause(FlowableTask):
    """Pause the execution until resumed, or until ``delay`` passes; ``timeout`` fails it."""

    type_name = "kray.core.flow.Pause"
    aliases = (K + "Pause", OLD + "Pause")
    pauses = True

    delay: timedelta | None = None
    pause_duration: timedelta | None = None  # Kestra's newer name for delay
    timeout: timedelta | None = None
    on_resume: list[Input] = Field(default_factory=list)
    tasks: list[Task] = Field(default_factory=list)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "paused" not in run.meta:
            run.meta["paused"] = True
            scope.set_state(run, State.PAUSED)
            delay = self.delay or self.pause_duration
            if delay is not None:
                scope.timer(run, "delay", delay)
            if self.timeout is not None:
                scope.timer(run, "timeout", self.timeout)
            return None
        if run.state.current == State.PAUSED:
            if "resumed" in run.meta:
                scope.set_outputs(run, {"onResume": run.meta["resumed"]})
            elif scope.fired(run, "delay"):
                pass
            elif scope.fired(run, "timeout"):
                raise TaskError(f"paused for longer than its timeout ({self.timeout})")
            else:
                return None
            scope.set_state(run, State.RUNNING)
        if self.tasks:
            return scope.run_list(self.tasks, run)
        return State.SUCCESS


class CheckFrequency(Model):
    max_iterations: int = Field(100, ge=1)
    max_duration: timedelta = timedelta(hours=1)
    interval: timedelta = timedelta(seconds=1)


class LoopUntil(FlowableTask):
    """Run ``tasks`` again and again until ``condition`` is true. Output ``iterationCount``."""

    type_name = "kray.core.flow.LoopUntil"
    aliases = (K + "LoopUntil", K + "WaitFor", "kray.core.flow.WaitFor")

    condition: str | bool
    tasks: list[Task] = Field(min_length=1)
    fail_on_max_reached: bool = False
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        it = run.meta.setdefault("iteration", 0)
        if run.meta.get("waiting") == it + 1:
            if not scope.fired(run, f"iter{it + 1}"):
                return None
            it = run.meta["iteration"] = it + 1
            del run.meta["waiting"]
        state = scope.run_list(self.tasks, run, iteration=it)
        if state is None:
            return None
        if state in FAILURES:
            return state
        scope.set_outputs(run, {"iterationCount": it + 1})
        if _truthy(scope.evaluate(self.condition, run, self)):
            return State.SUCCESS
        freq = self.check_frequency
        if it + 1 >= freq.max_iterations or scope.now - run.state.start >= freq.max_duration:
            if self.fail_on_max_reached:
                raise TaskError(f"condition still false after {it + 1} iterations")
            return State.SUCCESS
        run.meta["waiting"] = it + 1
        scope.timer(run, f"iter{it + 1}", freq.interval)
        return None


class WorkingDirectory(FlowableTask):
    """Run ``tasks`` in order on one worker, sharing one folder (``{{ workingDir }}``)."""

    type_name = "kray.core.flow.WorkingDirectory"
    aliases = (K + "WorkingDirectory", OLD + "WorkingDirectory")
    groups_children = True

    tasks: list[Task] = Field(min_length=1)
    input_files: dict[str, str] | str | None = None
    output_files: list[str] | None = None
    namespace_files: dict[str, Any] | None = None

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks]

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        if "group" not in run.meta:
            run.meta["group"] = True
            scope.emit(ev.OpenGroup(run.id, self.id, scope.variables(run, self)))
        state = scope.run_list(self.tasks, run)
        if state is not None:
            scope.emit(ev.CloseGroup(run.id))
        return state


TASKS = [Sequential, Parallel, AllowFailure, If, Switch, ForEach, EachSequential, EachParallel,
         Dag, Subflow, Pause, LoopUntil, WorkingDirectory]

__all__ = [c.__name__ for c in TASKS] + ["DagTask", "KrayError"]
