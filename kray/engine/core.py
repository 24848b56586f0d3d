"""The pure executor core: ``decide(plan, execution, event, now) -> (execution, commands)``.

No I/O, no clock, no Ray: the shell (``kray.executor``) feeds it events and carries out the
commands it returns. The execution passed in is updated in place and returned; every state
change goes through the transition table.

Order of rules for a task result: stale results are dropped (wrong attempt, or the run already
ended), then effects (labels, exit), then retry, then allowFailure/allowWarning.
"""

from __future__ import annotations

from datetime import datetime

from kray.engine import events as ev
from kray.engine.execution import Attempt, Execution, TaskRun
from kray.engine.plan import Plan
from kray.engine.policies import may_retry, retry_delay
from kray.engine.scope import Scope
from kray.engine.state import FAILURES, State, StateValue
from kray.errors import KrayError
from kray.task import FlowableTask, Retry, RetryBehavior, Task


MAX_LOST_ATTEMPTS = 3  # attempts lost to a dead worker or node, retried whatever the policy


def decide(plan: Plan, execution: Execution, event: ev.Event,
           now: datetime) -> tuple[Execution, list[ev.Command]]:
    commands: list[ev.Command] = []
    _Decider(plan, execution, now, commands).handle(event)
    return execution, commands


class _Decider:
    def __init__(self, plan: Plan, execution: Execution, now: datetime,
                 commands: list[ev.Command]):
        self.plan = plan
        self.ex = execution
        self.now = now
        self.commands = commands
        self.scope = Scope(plan, execution, now, commands)

    # ------------------------------------------------------------------ events
    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Batch):
            for one in event.events:
                if self.ex.state.current.terminal and not isinstance(one, ev.Restart):
                    return
                self.handle_one(one)
        elif not self.handle_one(event):
            return
        self.advance()

    def handle_one(self, event: ev.Event) -> bool:
        """Apply one event; False when progress must not follow (kill, no-op restart)."""
        ex = self.ex
        if isinstance(event, ev.Start):
            if ex.state.current in (State.CREATED, State.QUEUED):
                ex.state = ex.state.to(State.RUNNING, self.now)
        elif ex.state.current.terminal and not isinstance(event, ev.Restart):
            return False  # nothing starts after its execution is terminal
        elif isinstance(event, ev.TaskResult):
            self.on_result(event)
        elif isinstance(event, ev.TimerFired):
            self.on_timer(event.key)
        elif isinstance(event, ev.Kill):
            self.kill()
            return False
        elif isinstance(event, ev.Resume):
            self.on_resume(event)
        elif isinstance(event, ev.SubflowEnded):
            run = ex.get(event.task_run_id)
            if run is not None and not run.state.current.terminal:
                run.meta["ended"] = {"state": event.state.value, "outputs": event.outputs}
        elif isinstance(event, ev.Restart):
            return self.restart()
        return True

    def task(self, run: TaskRun) -> Task:
        return self.plan.tasks[run.task_id]

    def on_result(self, event: ev.TaskResult) -> None:
        run = self.ex.get(event.task_run_id)
        if (run is None or run.state.current != State.RUNNING
                or event.attempt != len(run.attempts)):
            return  # stale: a timed-out, killed or superseded attempt
        attempt = run.attempts[-1]
        if attempt.state.current.terminal:
            return
        attempt.state = attempt.state.to(event.state, self.now)
        attempt.node, attempt.error = event.node, event.error
        self.ex.timers.pop(f"timeout:{run.id}:{event.attempt}", None)
        if "labels" in event.effects:
            self.ex.labels.update(event.effects["labels"])
        if "exit" in event.effects:
            self.ex.metadata["exit"] = event.effects["exit"]
        task = self.task(run)
        if event.lost and run.meta.get("lost", 0) < MAX_LOST_ATTEMPTS:
            # Lost attempts are recorded but don't count against the task's own retry.
            run.meta["lost"] = run.meta.get("lost", 0) + 1
            self.scope.submit(run, task)
            return
        if event.state == State.FAILED:
            self.fail_attempt(run, task, event.error)
            return
        self.scope.set_outputs(run, event.outputs)
        state = event.state
        retry = self.retry_of(task)
        if state == State.SUCCESS and len(run.attempts) > 1 and retry and retry.warning_on_retry:
            state = State.WARNING
        self.scope.end(run, task, state)

    def retry_of(self, task: Task) -> Retry | None:
        """Retry precedence: the task's own, then the closest flowable's, then the flow's."""
        if task.retry is not None:
            return task.retry
        for parent in self.plan.ancestors(task.id):
            if parent.retry is not None:
                return parent.retry
        return self.plan.flow.retry

    def fail_attempt(self, run: TaskRun, task: Task, error: str | None) -> None:
        retry = self.retry_of(task)
        first_start = run.attempts[0].state.start
        if retry is not None and retry.behavior == RetryBehavior.CREATE_NEW_EXECUTION:
            done = int(self.ex.metadata.get("attempt", 1))
            if may_retry(retry, done, self.ex.state.start, self.now):
                self.ex.metadata["retryWith"] = done + 1
                self.ex.metadata["retryAt"] = (
                    self.now + retry_delay(retry, done, self.ex.id)).isoformat()
        elif may_retry(retry, len(run.attempts), first_start, self.now):
            assert retry is not None
            run.error = error
            self.scope.set_state(run, State.RETRYING)
            key = f"retry:{run.id}"
            at = self.now + retry_delay(retry, len(run.attempts), run.id)
            self.ex.timers[key] = at.isoformat()
            self.commands.append(ev.SetTimer(key, at))
            return
        self.scope.end(run, task, State.FAILED, error)

    def on_timer(self, key: str) -> None:
        if self.ex.timers.pop(key, None) is None:
            return  # cancelled, or already handled before a restart
        kind, _, rest = key.partition(":")
        if kind == "retry":
            run = self.ex.get(rest)
            if run is not None and run.state.current == State.RETRYING:
                self.scope.submit(run, self.task(run))
        elif kind == "timeout":
            run_id, _, n = rest.rpartition(":")
            run = self.ex.get(run_id)
            if (run is None or run.state.current != State.RUNNING
                    or len(run.attempts) != int(n)):
                return
            task = self.task(run)
            attempt = run.attempts[-1]
            error = f"timed out after {task.timeout}"
            attempt.state = attempt.state.to(State.FAILED, self.now)
            attempt.error = error
            self.commands.append(ev.CancelTask(run.id, int(n)))
            self.fail_attempt(run, task, error)
        elif kind == "wake":
            run_id, _, name = rest.rpartition(":")
            run = self.ex.get(run_id)
            if run is not None:
                run.meta.setdefault("fired", []).append(name)

    def on_resume(self, event: ev.Resume) -> None:
        for run in self.ex.task_runs:
            if run.state.current == State.PAUSED:
                run.meta["resumed"] = event.inputs

    # ------------------------------------------------------------------ kill / restart
    def kill(self) -> None:
        ex = self.ex
        if ex.state.current != State.KILLING:
            ex.state = ex.state.to(State.KILLING, self.now)
        for run in ex.task_runs:
            if run.state.current.terminal:
                continue
            task = self.task(run)
            if isinstance(task, FlowableTask):
                if "child" in run.meta and "ended" not in run.meta:
                    self.commands.append(ev.KillExecution(run.meta["child"]))
                if run.meta.get("group"):
                    self.commands.append(ev.CloseGroup(run.id))
            elif run.state.current == State.RUNNING and run.attempts:
                attempt = run.attempts[-1]
                if not attempt.state.current.terminal:
                    attempt.state = attempt.state.to(State.KILLED, self.now)
                    self.commands.append(ev.CancelTask(run.id, len(run.attempts)))
            self.scope.set_state(run, State.KILLED)
        self.finish(State.KILLED)

    def restart(self) -> bool:
        """Failed and killed task runs (and their flowable parents) run again, same ids."""
        ex = self.ex
        if ex.state.current not in (State.FAILED, State.KILLED, State.WARNING):
            return False
        ex.state = ex.state.to(State.RESTARTED, self.now).to(State.RUNNING, self.now)
        ex.metadata.pop("final", None)
        ex.error = None
        ex.timers.clear()
        ex.cache.clear()
        for run in ex.task_runs:
            run.cache.clear()
            if run.state.current not in FAILURES:
                continue
            run.state = run.state.to(State.RESTARTED, self.now)
            task = self.task(run)
            for key in ("paused", "fired", "ended", "child", "group", "waiting"):
                run.meta.pop(key, None)
            if isinstance(task, FlowableTask):
                self.scope.set_state(run, State.RUNNING)
            else:
                self.scope.submit(run, task)
        return True

    # ------------------------------------------------------------------ progress
    def advance(self) -> None:
        ex, flow, scope = self.ex, self.plan.flow, self.scope
        if ex.state.current not in (State.RUNNING, State.PAUSED):
            return
        if "exit" in ex.metadata:
            self.exit(State(ex.metadata.pop("exit")))
            return
        if "final" not in ex.metadata:
            state = scope.run_block(flow.tasks, None, errors=flow.errors,
                                    finally_=flow.finally_)
            if state is None:
                self.update_paused()
                return
            ex.metadata["final"] = self.render_outputs(state).value
            scope._base = None  # afterExecution sees the final execution.state
        if flow.after_execution and scope.run_list(flow.after_execution, None) is None:
            return
        final = State(ex.metadata["final"])
        if final == State.FAILED and "retryWith" in ex.metadata:
            self.commands.append(ev.RetryExecution(
                ex.metadata["retryWith"], datetime.fromisoformat(ex.metadata["retryAt"])))
            final = State.RETRIED
        self.finish(final)

    def render_outputs(self, state: State) -> State:
        """Flow outputs are rendered once the tasks end; one that fails fails the execution."""
        outputs = {}
        for out in self.plan.flow.outputs:
            try:
                variables = dict(self.scope.base_variables(), outputs=self.scope.outputs())
                outputs[out.id] = self.plan.renderer.evaluate(out.value, variables) \
                    if isinstance(out.value, str) else out.value
            except KrayError as e:
                self.ex.error = f"output '{out.id}': {e}"
                return State.FAILED
        self.ex.outputs = outputs
        return state

    def update_paused(self) -> None:
        """The execution is PAUSED while one of its task runs is."""
        ex = self.ex
        if not self.plan.has_pause:
            return
        paused = any(r.state.current == State.PAUSED for r in ex.task_runs)
        if paused and ex.state.current == State.RUNNING:
            ex.state = ex.state.to(State.PAUSED, self.now)
        elif not paused and ex.state.current == State.PAUSED:
            ex.state = ex.state.to(State.RUNNING, self.now)

    def exit(self, state: State) -> None:
        """The Exit task: stop everything still running and end in ``state``."""
        for run in self.ex.task_runs:
            if run.state.current.terminal:
                continue
            if run.state.current == State.RUNNING and run.attempts \
                    and not run.attempts[-1].state.current.terminal:
                run.attempts[-1].state = run.attempts[-1].state.to(State.KILLED, self.now)
                self.commands.append(ev.CancelTask(run.id, len(run.attempts)))
            if isinstance(self.task(run), FlowableTask) and run.meta.get("group"):
                self.commands.append(ev.CloseGroup(run.id))
            self.scope.set_state(run, State.KILLED)
        self.finish(state)

    def finish(self, state: State) -> None:
        ex = self.ex
        if ex.state.current == State.PAUSED and state not in (State.KILLED, State.FAILED):
            ex.state = ex.state.to(State.RUNNING, self.now)
        ex.state = ex.state.to(state, self.now)
        ex.metadata["final"] = state.value
        for key in list(ex.timers):
            ex.timers.pop(key)
        self.commands.append(ev.ExecutionEnded(state))


def new_execution(plan: Plan, execution_id: str, inputs: dict, now: datetime, *,
                  labels: dict[str, str] | None = None, trigger: dict | None = None,
                  state: State = State.CREATED) -> Execution:
    """A fresh execution of ``plan`` (inputs already resolved and validated)."""
    flow = plan.flow
    ex = Execution(id=execution_id, namespace=flow.namespace, flow_id=flow.id,
                   flow_revision=flow.revision or 1, state=StateValue.new(now),
                   inputs=inputs, labels={**flow.labels, **(labels or {})}, trigger=trigger)
    if state != State.CREATED:
        ex.state = ex.state.to(state, now)
    return ex


__all__ = ["decide", "new_execution", "Attempt"]
