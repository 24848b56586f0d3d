"""``Scope``: what a flowable task may do while the core advances an execution.

A flowable never touches the execution directly: it finds and creates child task runs, renders
its properties, sets timers and ends runs through the scope, so every change goes through the
transition table and the core's bookkeeping (outputs, timers, commands).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from kray.engine import events as ev
from kray.engine.execution import Attempt, Execution, TaskRun, task_run_id, value_key
from kray.engine.plan import Plan
from kray.engine.state import FAILURES, State, StateValue, merge_child_states
from kray.errors import KrayError
from kray.task import FlowableTask, Task

INHERIT: Any = object()  # a child takes its parent's ForEach value / LoopUntil iteration


def value_str(value: Any) -> str:
    """How a ForEach value addresses outputs: ``outputs.child[taskrun.value]``."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


class Scope:
    def __init__(self, plan: Plan, execution: Execution, now: datetime,
                 commands: list[ev.Command]):
        self.plan = plan
        self.execution = execution
        self.now = now
        self.commands = commands
        self._base: dict[str, Any] | None = None

    # ------------------------------------------------------------------ template context
    def base_variables(self) -> dict[str, Any]:
        if self._base is None:
            ex, flow = self.execution, self.plan.flow
            state = ex.metadata.get("final") or ex.state.current.value
            self._base = {
                "flow": {"id": flow.id, "namespace": flow.namespace,
                         "revision": ex.flow_revision},
                "execution": {"id": ex.id, "startDate": ex.state.start.isoformat(),
                              "originalId": ex.original_id, "state": state},
                "inputs": ex.inputs, "vars": flow.variables, "labels": ex.labels,
                "envs": self.plan.envs, "globals": self.plan.globals,
                "tasks": self._task_states(),
            }
            if ex.trigger is not None:
                self._base["trigger"] = ex.trigger
        return self._base

    def _task_states(self) -> dict[str, dict[str, str]]:
        cache = self.execution.metadata.setdefault("taskStates", {})
        return cache

    def outputs(self) -> dict[str, Any]:
        """All outputs, addressed as Kestra does (ForEach children by value). Built once per
        execution object and kept up to date incrementally."""
        ex = self.execution
        cache = getattr(ex, "_outputs_cache", None)
        if cache is None:
            cache = {}
            for tr in ex.task_runs:
                if tr.outputs:
                    self._put_output(cache, tr)
            ex._outputs_cache = cache  # type: ignore[attr-defined]
        return cache

    def _put_output(self, cache: dict[str, Any], tr: TaskRun) -> None:
        path = tr.meta.get("vp")
        if not path:
            cache[tr.task_id] = tr.outputs
            return
        node = cache.setdefault(tr.task_id, {})
        for v in path[:-1]:
            node = node.setdefault(value_str(v), {})
        node[value_str(path[-1])] = tr.outputs

    def variables(self, run: TaskRun, task: Task, *, all_outputs: bool = True) -> dict[str, Any]:
        v = dict(self.base_variables())
        outputs = self.outputs()
        refs = None if all_outputs else self.plan.refs.get(task.id)
        v["outputs"] = outputs if refs is None else {k: outputs[k] for k in refs if k in outputs}
        v["task"] = {"id": task.id, "type": task.type}
        v["taskrun"] = {"id": run.id, "value": run.value, "parentId": run.parent_task_run_id,
                        "attemptsCount": len(run.attempts), "iteration": run.iteration,
                        "startDate": run.state.start.isoformat()}
        parents = []
        parent_id = run.parent_task_run_id
        while parent_id is not None:
            p = self.execution.get(parent_id)
            if p is None:
                break
            parents.append({"taskrun": {"id": p.id, "value": p.value, "iteration": p.iteration},
                            "outputs": p.outputs})
            parent_id = p.parent_task_run_id
        if parents:
            v["parent"] = parents[0]
            v["parents"] = parents
        return v

    def evaluate(self, template: Any, run: TaskRun, task: Task) -> Any:
        if not isinstance(template, str):
            return template
        return self.plan.renderer.evaluate(template, self.variables(run, task))

    def render_value(self, value: Any, run: TaskRun, task: Task) -> Any:
        return self.plan.renderer.render_value(value, self.variables(run, task))

    # ------------------------------------------------------------------ state changes
    def set_state(self, run: TaskRun, state: State) -> None:
        run.state = run.state.to(state, self.now)
        self._task_states()[run.task_id] = {"state": state.value}

    def set_outputs(self, run: TaskRun, outputs: dict[str, Any]) -> None:
        run.outputs = outputs
        if outputs:
            self._put_output(self.outputs(), run)

    def end(self, run: TaskRun, task: Task, state: State, error: str | None = None) -> None:
        """End a task run, applying ``allowFailure`` and ``allowWarning``."""
        if state == State.FAILED and task.allow_failure:
            state = State.WARNING
        if state == State.WARNING and task.allow_warning:
            state = State.SUCCESS
        if error:
            run.error = error
        if run.state.current in (State.CREATED, State.PAUSED, State.RETRYING) and state in (
                State.SUCCESS, State.WARNING):
            self.set_state(run, State.RUNNING)
        self.set_state(run, state)

    def timer(self, run: TaskRun, name: str, delay: timedelta) -> None:
        """Wake ``run`` after ``delay``; its flowable sees ``fired(run, name)`` on a later call."""
        key = f"wake:{run.id}:{name}"
        at = self.now + delay
        self.execution.timers[key] = at.isoformat()
        self.commands.append(ev.SetTimer(key, at))

    @staticmethod
    def fired(run: TaskRun, name: str) -> bool:
        return name in run.meta.get("fired", ())

    def emit(self, command: ev.Command) -> None:
        self.commands.append(command)

    # ------------------------------------------------------------------ children
    def find(self, task: Task, parent: TaskRun | None, value: Any = INHERIT,
             iteration: Any = INHERIT) -> TaskRun | None:
        value, iteration = self._inherit(parent, value, iteration)
        return self.execution.find(task.id, parent.id if parent else None, value, iteration)

    def _inherit(self, parent: TaskRun | None, value: Any, iteration: Any) -> tuple[Any, Any]:
        if value is INHERIT:
            value = parent.value if parent else None
        if iteration is INHERIT:
            iteration = parent.iteration if parent else None
        return value, iteration

    def create(self, task: Task, parent: TaskRun | None, value: Any = INHERIT,
               iteration: Any = INHERIT) -> TaskRun:
        new_value = value is not INHERIT
        value, iteration = self._inherit(parent, value, iteration)
        ex = self.execution
        parent_id = parent.id if parent else None
        run = TaskRun(id=task_run_id(ex.id, parent_id, task.id, value, iteration),
                      execution_id=ex.id, task_id=task.id, state=StateValue.new(self.now),
                      parent_task_run_id=parent_id, value=value, iteration=iteration)
        vp = list(parent.meta.get("vp", ())) if parent else []
        if new_value:
            vp.append(value)
        if vp:
            run.meta["vp"] = vp
        ex.add(run)
        self._task_states()[task.id] = {"state": State.CREATED.value}
        if task.run_if is not None:
            try:
                from kray.templating import is_truthy
                go = is_truthy(self.evaluate(task.run_if, run, task))
            except KrayError as e:
                self.end(run, task, State.FAILED, f"runIf: {e}")
                return run
            if not go:
                self.set_state(run, State.SKIPPED)
                return run
        if isinstance(task, FlowableTask):
            self.set_state(run, State.RUNNING)
        else:
            self.submit(run, task)
        return run

    def submit(self, run: TaskRun, task: Task) -> None:
        """Start the next attempt of a runnable task run."""
        attempt = len(run.attempts) + 1
        run.attempts.append(Attempt(StateValue.new(self.now, State.RUNNING)))
        if run.state.current != State.RUNNING:  # a lost attempt's run stays RUNNING
            self.set_state(run, State.RUNNING)
        self.commands.append(ev.SubmitTask(run.id, attempt, task.id,
                                           self.variables(run, task, all_outputs=False),
                                           self.group_of(run)))
        if task.timeout:
            key = f"timeout:{run.id}:{attempt}"
            at = self.now + task.timeout
            self.execution.timers[key] = at.isoformat()
            self.commands.append(ev.SetTimer(key, at))

    def group_of(self, run: TaskRun) -> str | None:
        """The WorkingDirectory task run this run belongs to, if any."""
        parent_id = run.parent_task_run_id
        while parent_id is not None:
            parent = self.execution.get(parent_id)
            if parent is None:
                return None
            if getattr(self.plan.tasks.get(parent.task_id), "groups_children", False):
                return parent.id
            parent_id = parent.parent_task_run_id
        return None

    def step(self, task: Task, run: TaskRun) -> None:
        """Advance a non-terminal flowable run once."""
        assert isinstance(task, FlowableTask)
        try:
            state = task.advance(self, run)
        except KrayError as e:
            state, run.error = State.FAILED, str(e)
        if state is not None and not run.state.current.terminal:
            self.end(run, task, state, run.error)

    def run_one(self, task: Task, parent: TaskRun | None, value: Any = INHERIT,
                iteration: Any = INHERIT, *, start: bool = True,
                run: TaskRun | None | Any = INHERIT) -> State | None:
        """The state of ``task``'s run under ``parent``: created if ``start``, advanced if it is
        a running flowable. None while it (or nothing yet) runs. ``run``: the run, when the
        caller already looked it up."""
        if run is INHERIT:
            run = self.find(task, parent, value, iteration)
        if run is None:
            if not start:
                return None
            run = self.create(task, parent, value, iteration)
        if not run.state.current.terminal and isinstance(task, FlowableTask):
            self.step(task, run)
        return run.state.current if run.state.current.terminal else None

    def run_list(self, tasks: list[Task], parent: TaskRun | None, *, limit: int = 1,
                 value: Any = INHERIT, iteration: Any = INHERIT) -> State | None:
        """Run ``tasks`` with at most ``limit`` at once (0: no limit; 1: in order, stopping at
        the first failure). Returns the merged terminal state, or None while running."""
        states: list[State] = []
        active = 0
        holder = parent if parent is not None else self.execution
        settled = holder.cache.setdefault(
            ("list", id(tasks), value_key(value), iteration), {})
        for index, task in enumerate(tasks):
            state = settled.get(index)
            if state is None:
                if task.disabled:
                    continue
                run = self.find(task, parent, value, iteration)
                if run is None and limit and active >= limit:
                    return None
                state = self.run_one(task, parent, value, iteration, run=run)
            if state is None:
                active += 1
                if limit == 1:
                    return None
            else:
                settled[index] = state
                states.append(state)
                if limit == 1 and state in FAILURES:
                    return state
        if active:
            return None
        return merge_child_states(states)

    def run_block(self, tasks: list[Task], parent: TaskRun | None, *,
                  errors: list[Task] = (), finally_: list[Task] = (), limit: int = 1,
                  value: Any = INHERIT, iteration: Any = INHERIT) -> State | None:
        """``tasks``, then ``errors`` if they failed (errors never rescue the block), then
        ``finally`` always."""
        state = self.run_list(tasks, parent, limit=limit, value=value, iteration=iteration)
        if state is None:
            return None
        if state in FAILURES and errors:
            if self.run_list(list(errors), parent, value=value, iteration=iteration) is None:
                return None
        if finally_:
            fin = self.run_list(list(finally_), parent, value=value, iteration=iteration)
            if fin is None:
                return None
            state = merge_child_states([state, fin])
        return state
