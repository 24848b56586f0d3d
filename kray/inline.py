"""An in-process shell around the pure core: no Ray, one thread, a virtual clock.

Runnable tasks run synchronously with the real worker code (real templating, storage and KV),
timers fire by advancing the virtual clock, subflows run in the same loop. It makes flow tests
fast and deterministic; ``kray run`` uses the Ray executor instead. Task timeouts cannot
interrupt a synchronous task here: test those on Ray.
"""

from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kray.engine import events as ev
from kray.engine.core import decide, new_execution
from kray.engine.execution import Execution
from kray.engine.plan import Plan
from kray.engine.policies import admit
from kray.engine.state import State
from kray.errors import FlowNotFound, KrayError
from kray.flow.model import Flow
from kray.worker import TaskSpec, WorkerConfig, run_task


class InlineRunner:
    def __init__(self, base_dir: str | Path | None = None, *, flows: list[Flow] = (),
                 start: datetime | None = None, max_steps: int = 100_000):
        from kray.storage.internal import InternalStorage
        from kray.storage.kv import KVStore
        from kray.storage.repository import Repository
        from kray.templating import TemplateEngine

        self.base = Path(base_dir or tempfile.mkdtemp(prefix="kray-inline-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.repo = Repository(self.base / "kray.duckdb")
        self.kv = KVStore(self.repo)
        self.storage = InternalStorage(str(self.base / "storage"))
        self.config = WorkerConfig(str(self.base / "storage"), kv=self.kv)
        self.engine = TemplateEngine()
        self.flows: dict[str, Flow] = {f.uid: f for f in flows}
        self.now = start or datetime.now(timezone.utc)
        self.max_steps = max_steps
        self.executions: dict[str, Execution] = {}
        self.plans: dict[str, Plan] = {}
        self.logs: dict[str, list[dict]] = {}
        self._events: deque[tuple[str, ev.Event]] = deque()
        self._timers: list[tuple[datetime, int, str, str]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._groups: dict[str, str] = {}
        self._running: dict[str, int] = {}
        self._queued: dict[str, deque[str]] = {}

    def add_flow(self, flow: Flow) -> None:
        self.flows[flow.uid] = flow

    def plan(self, flow: Flow) -> Plan:
        if flow.uid not in self.plans:
            self.plans[flow.uid] = Plan.compile(flow, self.engine)
        return self.plans[flow.uid]

    # ------------------------------------------------------------------ public
    def run(self, flow: Flow, inputs: dict[str, Any] | None = None, *,
            labels: dict[str, str] | None = None) -> Execution:
        """Run ``flow`` (and whatever it starts) until nothing is left to do."""
        self.add_flow(flow)
        ex = self.start(flow, inputs or {}, labels=labels)
        self.drain()
        return self.executions[ex.id]

    def start(self, flow: Flow, inputs: dict[str, Any], *, labels: dict | None = None,
              execution_id: str | None = None, parent: dict | None = None,
              resolved: bool = False) -> Execution:
        from kray.flow.inputs import resolve_inputs
        if not resolved:
            inputs = resolve_inputs(flow, inputs)
        plan = self.plan(flow)
        ex = new_execution(plan, execution_id or f"ex{next(self._ids)}", inputs, self.now,
                           labels=labels)
        ex.parent_task_run = parent
        self.executions[ex.id] = ex
        state = admit(flow.concurrency, self._running.get(flow.uid, 0))
        if state == State.RUNNING:
            self._running[flow.uid] = self._running.get(flow.uid, 0) + 1
            self._events.append((ex.id, ev.Start()))
        elif state == State.QUEUED:
            ex.state = ex.state.to(State.QUEUED, self.now)
            self._queued.setdefault(flow.uid, deque()).append(ex.id)
        else:
            ex.state = ex.state.to(state, self.now)
        return ex

    def send(self, execution_id: str, event: ev.Event) -> Execution:
        """Deliver an event (Resume, Kill, Restart...) and run until idle."""
        self._events.append((execution_id, event))
        self.drain()
        return self.executions[execution_id]

    def drain(self) -> None:
        for _ in range(self.max_steps):
            if self._events:
                ex_id, event = self._events.popleft()
                self._step(ex_id, event)
            elif self._timers:
                at, _, ex_id, key = heapq.heappop(self._timers)
                self.now = max(self.now, at)
                self._step(ex_id, ev.TimerFired(key))
            else:
                return
        raise KrayError(f"inline run did not settle after {self.max_steps} steps")

    def advance_clock(self, delta: timedelta) -> None:
        self.now += delta

    # ------------------------------------------------------------------ the loop
    def _step(self, ex_id: str, event: ev.Event) -> None:
        ex = self.executions[ex_id]
        flow = self.flows[f"{ex.namespace}/{ex.flow_id}"]
        plan = self.plan(flow)
        _, commands = decide(plan, ex, event, self.now)
        for c in commands:
            self._carry_out(ex, plan, c)

    def _carry_out(self, ex: Execution, plan: Plan, c: ev.Command) -> None:
        if isinstance(c, ev.SubmitTask):
            task = plan.tasks[c.task_id]
            spec = TaskSpec(ex.id, ex.namespace, ex.flow_id, task, c.task_run_id, c.attempt,
                            c.variables)
            wd = self._groups.get(c.group) if c.group else None
            if wd is not None:
                spec.variables = {**spec.variables, "workingDir": wd}
            result = run_task(self.config, spec, working_dir=wd)
            self.logs.setdefault(ex.id, []).extend(
                {"taskId": task.id, "taskRunId": c.task_run_id, **line}
                for line in result["logs"])
            self._events.append((ex.id, ev.TaskResult(
                c.task_run_id, c.attempt, State(result["state"]), result["outputs"],
                result["error"], result["effects"], result["node"])))
        elif isinstance(c, ev.SetTimer):
            heapq.heappush(self._timers, (c.at, next(self._seq), ex.id, c.key))
        elif isinstance(c, ev.OpenGroup):
            self._groups[c.task_run_id] = tempfile.mkdtemp(prefix="kray-wd-")
        elif isinstance(c, ev.CloseGroup):
            path = self._groups.pop(c.task_run_id, None)
            if path:
                shutil.rmtree(path, ignore_errors=True)
        elif isinstance(c, ev.CreateSubflow):
            self._subflow(ex, c)
        elif isinstance(c, ev.KillExecution):
            if c.execution_id in self.executions:
                self._events.append((c.execution_id, ev.Kill()))
        elif isinstance(c, ev.RetryExecution):
            flow = self.flows[f"{ex.namespace}/{ex.flow_id}"]
            retry = self.start(flow, ex.inputs, labels=ex.labels, resolved=True)
            retry.metadata.update(attempt=c.attempt, retryOf=ex.id)
        elif isinstance(c, ev.ExecutionEnded):
            self._ended(ex, plan)

    def _subflow(self, parent: Execution, c: ev.CreateSubflow) -> None:
        flow = self.flows.get(f"{c.namespace}/{c.flow_id}")
        try:
            if flow is None:
                raise FlowNotFound(f"flow {c.namespace}/{c.flow_id} not found")
            self.start(flow, c.inputs, labels=c.labels, execution_id=c.execution_id,
                       parent={"executionId": parent.id, "taskRunId": c.task_run_id}
                       if c.wait else None)
        except KrayError as e:
            if c.wait:
                run = parent.get(c.task_run_id)
                if run is not None:
                    run.error = str(e)
                self._events.append((parent.id, ev.SubflowEnded(
                    c.task_run_id, c.execution_id, State.FAILED, {})))

    def _ended(self, ex: Execution, plan: Plan) -> None:
        uid = plan.flow.uid
        self._running[uid] = max(0, self._running.get(uid, 0) - 1)
        queue = self._queued.get(uid)
        if queue and admit(plan.flow.concurrency, self._running[uid]) == State.RUNNING:
            self._running[uid] += 1
            self._events.append((queue.popleft(), ev.Start()))
        if ex.parent_task_run:
            self._events.append((ex.parent_task_run["executionId"], ev.SubflowEnded(
                ex.parent_task_run["taskRunId"], ex.id, ex.state.current, ex.outputs)))
