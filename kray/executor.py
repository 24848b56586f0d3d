"""The executor: a detached, named Ray actor, the thin async shell around the pure core.

It owns the DuckDB repository (DuckDB allows one writing process), keeps live executions in
memory, feeds events to ``decide`` and carries out the commands it returns. State changes are
persisted in batches (group commit): one transaction every ``flush_interval`` for whatever
changed, except that creating an execution waits for its own commit, so an accepted execution
is never lost. On restart it reloads non-terminal executions and reconciles their in-flight
attempts: a result a worker already checkpointed to storage is applied, not run again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets as pysecrets
import string
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kray.cluster import ClusterHooks, storage_from_env
from kray.engine import events as ev
from kray.engine.core import decide, new_execution
from kray.engine.execution import Execution, TaskRun
from kray.engine.plan import Plan
from kray.engine.policies import admit
from kray.engine.scope import Scope
from kray.engine.state import State
from kray.errors import ExecutionNotFound, FlowNotFound, FlowValidationError, KrayError
from kray.flow.model import Flow
from kray.task import FlowableTask, Task
from kray.executor_queries import QueriesMixin
from kray.scheduler import SchedulerMixin
from kray.worker import GroupWorker, TaskSpec, WorkerConfig, result_path, run_task

log = logging.getLogger("kray.executor")

EXECUTOR_NAME = "kray-executor"
NAMESPACE = "kray"
_ALPHABET = string.ascii_letters + string.digits
FOLLOW_COALESCE = 0.1  # seconds


def new_id() -> str:
    """A 22-character base62 id, like Kestra's."""
    return "".join(pysecrets.choice(_ALPHABET) for _ in range(22))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ExecutorConfig:
    data_dir: str
    storage_url: str | None = None  # default: <data_dir>/storage
    storage_options: dict[str, Any] = field(default_factory=dict)
    secrets_file: str | None = None
    flush_interval: float = 0.02  # seconds between group commits
    recent: int = 1000  # ended executions kept in memory for followers
    envs: dict[str, str] = field(default_factory=dict)
    globals: dict[str, Any] = field(default_factory=dict)

    def resolved_storage_url(self) -> str:
        return self.storage_url or str(Path(self.data_dir) / "storage")


def ray_options(task: Task) -> dict[str, Any]:
    """A task's ``resources`` and ``runtimeEnv`` as Ray task options."""
    opts: dict[str, Any] = {}
    res = task.resources
    if res is not None:
        if res.cpu is not None:
            opts["num_cpus"] = res.cpu
        if res.gpu is not None:
            opts["num_gpus"] = res.gpu
        if res.memory is not None:
            opts["memory"] = parse_memory(res.memory)
        custom = {k: float(v) for k, v in (res.model_extra or {}).items()}
        if custom:
            opts["resources"] = custom
    if task.runtime_env:
        opts["runtime_env"] = task.runtime_env
    return opts


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
          "gi": 1024**3, "gib": 1024**3, "t": 1000**4, "ti": 1024**4}


def parse_memory(value: int | str) -> int:
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    number = text.rstrip(string.ascii_letters)
    unit = text[len(number):].strip()
    if unit not in _UNITS or not number:
        raise KrayError(f"bad memory size {value!r} (use bytes, or e.g. 512Mi, 2Gi, 1GB)")
    return int(float(number) * _UNITS[unit])


class ExecutorService(QueriesMixin, SchedulerMixin):
    """The executor's logic; ``executor_actor()`` wraps it as a Ray actor."""

    def __init__(self, config: ExecutorConfig | dict):
        from kray.registry import PluginRegistry
        from kray.storage.internal import InternalStorage
        from kray.storage.kv import KVStore
        from kray.storage.repository import Repository
        from kray.templating import TemplateEngine

        self.config = config if isinstance(config, ExecutorConfig) else ExecutorConfig(**config)
        self.config.storage_url, self.config.storage_options = storage_from_env(
            self.config.storage_url, self.config.storage_options)  # the head's KRAY_STORAGE_*
        data = Path(self.config.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.repo = Repository(data / "kray.duckdb")
        self.kvstore = KVStore(self.repo)
        self.storage = InternalStorage(self.config.resolved_storage_url(),
                                       **self.config.storage_options)
        self.registry = PluginRegistry.default()
        self.engine = TemplateEngine()
        self.plans: dict[tuple[str, str, int], Plan] = {}
        self.live: dict[str, Execution] = {}
        self.recent: OrderedDict[str, Execution] = OrderedDict()
        self.versions: dict[str, int] = defaultdict(int)
        self.docs: dict[str, tuple[int, dict]] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self.logs: dict[str, list[dict]] = defaultdict(list)
        self.inflight: dict[tuple[str, int], Any] = {}
        self.groups: dict[str, Any] = {}
        self.queues: dict[str, deque[str]] = defaultdict(deque)
        self.running: dict[str, int] = defaultdict(int)
        self.dirty: dict[str, Execution] = {}
        self.pending_logs: list[dict] = []
        self.pending_events: dict[str, list[ev.Event]] = {}
        self.pending_metrics: list[dict] = []
        self.db_lock: asyncio.Lock | None = None
        self.flush_task: asyncio.Task | None = None
        self.started: asyncio.Future | None = None
        self.worker_config: WorkerConfig | None = None
        self.config_ref: Any = None
        self.flush_cost = 0.0  # seconds the last group commit took
        self.cluster = ClusterHooks()  # feasibility, capacity requests, Ray task ids

    # ------------------------------------------------------------------ lifecycle
    async def _ensure_started(self) -> None:
        if self.started is None:
            self.started = asyncio.get_running_loop().create_future()
            self.db_lock = asyncio.Lock()
            try:
                await self._recover()
                await self._start_triggers()
                self.started.set_result(True)
            except BaseException as e:
                self.started.set_exception(e)
                raise
        await self.started

    def _worker_config(self) -> WorkerConfig:
        if self.worker_config is None:
            try:
                import ray
                handle = ray.get_runtime_context().current_actor
            except Exception:
                handle = None
            self.worker_config = WorkerConfig(self.config.resolved_storage_url(),
                                              self.config.storage_options,
                                              self.config.secrets_file, handle)
        return self.worker_config

    def _config_ref(self) -> Any:
        """The worker config, put in the object store once: serialising its actor handle on
        every submission costs more than the task itself."""
        if self.config_ref is None:
            import ray
            self.config_ref = ray.put(self._worker_config())
        return self.config_ref

    async def cluster_info(self) -> dict:
        """Node types, the autoscaler request in force and the Ray dashboard's URL."""
        return self.cluster.info()

    async def ping(self) -> dict:
        await self._ensure_started()
        return {"pid": os.getpid(), "live": len(self.live), "config": asdict(self.config)}

    async def _recover(self) -> None:
        docs = await asyncio.to_thread(self.repo.load_executions, non_terminal=True)
        resumed = []
        for doc in docs:
            ex = Execution.from_dict(doc)
            try:
                plan = self._plan_for(ex.namespace, ex.flow_id, ex.flow_revision)
            except KrayError as e:
                log.error("cannot recover execution %s: %s", ex.id, e)
                continue
            self.live[ex.id] = ex
            # Its stored lines first: followers number lines by position (SSE resume).
            self.logs[ex.id] = await asyncio.to_thread(self.repo.logs, ex.id)
            if ex.state.current == State.QUEUED:
                self.queues[plan.flow.uid].append(ex.id)
            else:
                self.running[plan.flow.uid] += 1
            resumed.append((ex, plan))
        for ex, plan in resumed:
            if ex.state.current == State.CREATED:
                self._apply(ex, ev.Start())
                continue
            now = utcnow()
            for key, at in list(ex.timers.items()):
                self._arm(ex.id, key, datetime.fromisoformat(at), now)
            await self._reconcile(ex, plan)
        if resumed:
            log.warning("executor recovered %d executions", len(resumed))

    async def _reconcile(self, ex: Execution, plan: Plan) -> None:
        scope = Scope(plan, ex, utcnow(), [])
        for run in list(ex.task_runs):
            task = plan.tasks[run.task_id]
            if isinstance(task, FlowableTask):
                if run.meta.get("group") and not run.state.current.terminal:
                    self._open_group(run.id)
                child = run.meta.get("child")
                if child and getattr(task, "wait", False) and not run.state.current.terminal:
                    doc = self.live.get(child) or await self._load(child)
                    if doc is not None and _state_of(doc).terminal:
                        self._apply(ex, ev.SubflowEnded(run.id, child, _state_of(doc),
                                                        _outputs_of(doc)))
                continue
            if run.state.current != State.RUNNING or not run.attempts \
                    or run.attempts[-1].state.current.terminal:
                continue
            attempt = len(run.attempts)
            path = result_path(ex.id, run.id, attempt)
            if await asyncio.to_thread(self.storage.exists, path):
                data = json.loads(await asyncio.to_thread(self.storage.read, path))
                self._on_result(ex.id, run.id, attempt, data)
            else:
                self._submit(ex, plan, ev.SubmitTask(
                    run.id, attempt, task.id, scope.variables(run, task, all_outputs=False),
                    scope.group_of(run)))

    # ------------------------------------------------------------------ flows and plans
    def _plan_for(self, namespace: str, flow_id: str, revision: int | None = None) -> Plan:
        if revision is not None and (namespace, flow_id, revision) in self.plans:
            return self.plans[(namespace, flow_id, revision)]
        doc = self.repo.get_flow(namespace, flow_id, revision)
        if doc is None or (revision is None and doc.get("deleted")):
            raise FlowNotFound(f"flow {namespace}/{flow_id} not found"
                               + (f" at revision {revision}" if revision else ""))
        key = (namespace, flow_id, doc["revision"])
        if key not in self.plans:
            from kray.flow.parse import parse_flow
            flow = parse_flow(doc["source"], file=f"{namespace}/{flow_id}",
                              registry=self.registry)
            flow.revision = doc["revision"]
            self.plans[key] = Plan.compile(flow, self.engine, envs=self.config.envs,
                                           globals=self.config.globals)
        return self.plans[key]

    async def deploy(self, source: str, path: str | None = None) -> dict:
        """Validate and save a flow; a changed source becomes a new revision."""
        await self._ensure_started()
        from kray.flow.parse import parse_flow
        flow = parse_flow(source, file=path, registry=self.registry)
        async with self.db_lock:
            revision = await asyncio.to_thread(self.repo.save_flow, flow.namespace, flow.id,
                                               source)
        self._flow_changed(flow.namespace, flow.id)
        return {"namespace": flow.namespace, "id": flow.id, "revision": revision}

    # ------------------------------------------------------------------ executions
    async def create_execution(self, namespace: str, flow_id: str,
                               inputs: dict[str, Any] | None = None, *,
                               labels: dict[str, str] | None = None,
                               execution_id: str | None = None, revision: int | None = None,
                               trigger: dict | None = None, resolved: bool = False,
                               parent: dict | None = None, metadata: dict | None = None) -> dict:
        """Create an execution; answers once it is durable."""
        await self._ensure_started()
        ex = self._new_execution(namespace, flow_id, inputs or {}, labels=labels,
                                 execution_id=execution_id, revision=revision, trigger=trigger,
                                 resolved=resolved, parent=parent, metadata=metadata)
        await self._flush()
        return ex.to_dict()

    def _new_execution(self, namespace: str, flow_id: str, inputs: dict[str, Any], *,
                       labels: dict | None = None, execution_id: str | None = None,
                       revision: int | None = None, trigger: dict | None = None,
                       resolved: bool = False, parent: dict | None = None,
                       metadata: dict | None = None, seed: Any = None) -> Execution:
        plan = self._plan_for(namespace, flow_id, revision)
        flow = plan.flow
        if not resolved:
            from kray.flow.inputs import resolve_inputs
            inputs = resolve_inputs(flow, inputs)
        execution_id = execution_id or new_id()
        if execution_id in self.live:
            return self.live[execution_id]
        now = utcnow()
        state = State.RUNNING if flow.concurrency is None else admit(
            flow.concurrency, self.running[flow.uid])
        ex = new_execution(plan, execution_id, inputs, now, labels=labels, trigger=trigger)
        ex.parent_task_run = parent
        ex.metadata.update(metadata or {})
        if seed is not None:  # replay: parent ids and the task runs it keeps
            seed(ex)
        if flow.disabled:
            state, ex.error = State.FAILED, "the flow is disabled"
        self.live[ex.id] = ex
        self._mark(ex)
        if state == State.RUNNING:
            self.running[flow.uid] += 1
            self._apply(ex, ev.Start())
        elif state == State.QUEUED:
            ex.state = ex.state.to(State.QUEUED, now)
            self.queues[flow.uid].append(ex.id)
        else:
            ex.state = ex.state.to(state, now)
            if state == State.FAILED and not ex.error:
                ex.error = f"flow concurrency limit {flow.concurrency.limit} reached"
            self._ended(ex, plan)
        return ex

    async def get_execution(self, execution_id: str) -> dict:
        await self._ensure_started()
        ex = self.live.get(execution_id) or self.recent.get(execution_id)
        if ex is not None:
            return ex.to_dict()
        doc = await self._load(execution_id)
        if doc is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return doc

    async def _load(self, execution_id: str) -> dict | None:
        async with self.db_lock:
            return await asyncio.to_thread(self.repo.get_execution, execution_id)

    async def follow(self, execution_id: str, version: int = -1, log_cursor: int = 0,
                     timeout: float = 1.0) -> dict:
        """Long-poll: the execution when its version moved past ``version``, and new logs."""
        await self._ensure_started()
        ex = self.live.get(execution_id) or self.recent.get(execution_id)
        if ex is None:
            doc = await self.get_execution(execution_id)
            logs = await self.execution_logs(execution_id)
            return {"execution": doc, "version": 0, "logs": logs[log_cursor:],
                    "logCursor": len(logs), "done": True}
        current = self.versions[execution_id]
        if current == version and len(self.logs[execution_id]) == log_cursor \
                and not ex.state.current.terminal:
            event = self.changed.setdefault(execution_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout)
                # Let a burst of changes land before answering: followers get at most
                # ~10 snapshots a second, whatever the execution's pace.
                await asyncio.sleep(FOLLOW_COALESCE)
            except asyncio.TimeoutError:
                pass
            current = self.versions[execution_id]
        logs = self.logs[execution_id]
        return {"execution": self._doc(ex) if current != version else None, "version": current,
                "logs": logs[log_cursor:], "logCursor": len(logs),
                "done": ex.state.current.terminal}

    async def execution_logs(self, execution_id: str) -> list[dict]:
        await self._ensure_started()
        if execution_id in self.logs:
            return list(self.logs[execution_id])
        async with self.db_lock:
            return await asyncio.to_thread(self.repo.logs, execution_id)

    async def kill(self, execution_id: str) -> dict:
        return await self._event(execution_id, ev.Kill())

    async def resume(self, execution_id: str, inputs: dict | None = None) -> dict:
        return await self._event(execution_id, ev.Resume(inputs or {}))

    async def restart(self, execution_id: str) -> dict:
        await self._ensure_started()
        if execution_id not in self.live:
            doc = await self.get_execution(execution_id)
            ex = Execution.from_dict(doc)
            if execution_id not in self.logs:  # followers number lines by position
                self.logs[execution_id] = await self.execution_logs(execution_id)
            self.recent.pop(execution_id, None)
            self.live[ex.id] = ex
            self.running[f"{ex.namespace}/{ex.flow_id}"] += 1
        return await self._event(execution_id, ev.Restart())

    async def _event(self, execution_id: str, event: ev.Event) -> dict:
        await self._ensure_started()
        ex = self.live.get(execution_id)
        if ex is None:
            raise ExecutionNotFound(f"execution {execution_id} is not running")
        self._apply(ex, event)
        await self._flush()
        return ex.to_dict()

    # ------------------------------------------------------------------ KV and logs (workers)
    async def kv(self, op: str, *args: Any, **kwargs: Any) -> Any:
        await self._ensure_started()
        method = {"get": self.kvstore.get, "set": self.kvstore.set,
                  "delete": self.kvstore.delete, "keys": self.kvstore.keys}[op]
        async with self.db_lock:
            return await asyncio.to_thread(method, *args, **kwargs)

    async def append_logs(self, execution_id: str, task_run_id: str, task_id: str,
                          attempt: int, lines: list[dict]) -> None:
        self._add_logs(execution_id, task_run_id, task_id, attempt, lines)
        ex = self.live.get(execution_id)
        if ex is not None:
            self._notify(ex)

    def _add_logs(self, execution_id: str, task_run_id: str, task_id: str, attempt: int,
                  lines: list[dict]) -> None:
        rows = [{"executionId": execution_id, "taskRunId": task_run_id, "taskId": task_id,
                 "attempt": attempt, **line} for line in lines]
        self.logs[execution_id].extend(rows)
        self.pending_logs.extend(rows)

    # ------------------------------------------------------------------ the loop
    def _apply(self, ex: Execution, event: ev.Event) -> None:
        plan = self._plan_for(ex.namespace, ex.flow_id, ex.flow_revision)
        _, commands = decide(plan, ex, event, utcnow())
        self._mark(ex)
        for command in commands:
            try:
                self._carry_out(ex, plan, command)
            except Exception as e:  # a command that cannot be carried out fails its run
                log.exception("command %s failed", command)
                run_id = getattr(command, "task_run_id", None)
                attempt = getattr(command, "attempt", 1)
                if isinstance(command, ev.SubmitTask) and run_id:
                    asyncio.get_running_loop().call_soon(
                        self._on_result, ex.id, run_id, attempt,
                        {"state": "FAILED", "error": f"cannot submit: {e}"})

    def _carry_out(self, ex: Execution, plan: Plan, c: ev.Command) -> None:
        if isinstance(c, ev.SubmitTask):
            self._submit(ex, plan, c)
        elif isinstance(c, ev.CancelTask):
            ref = self.inflight.pop((c.task_run_id, c.attempt), None)
            if ref is not None:
                import ray
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # actor tasks cannot be force-cancelled
                    ray.cancel(ref)
        elif isinstance(c, ev.SetTimer):
            self._arm(ex.id, c.key, c.at, utcnow())
        elif isinstance(c, ev.OpenGroup):
            self._open_group(c.task_run_id)
        elif isinstance(c, ev.CloseGroup):
            actor = self.groups.pop(c.task_run_id, None)
            if actor is not None:
                asyncio.ensure_future(self._close_group(actor))
        elif isinstance(c, ev.CreateSubflow):
            self._create_subflow(ex, c)
        elif isinstance(c, ev.KillExecution):
            child = self.live.get(c.execution_id)
            if child is not None:
                self._apply(child, ev.Kill())
        elif isinstance(c, ev.RetryExecution):
            delay = max(0.0, (c.at - utcnow()).total_seconds())
            asyncio.get_running_loop().call_later(delay, self._retry_execution, ex, c.attempt)
        elif isinstance(c, ev.ExecutionEnded):
            self._ended(ex, plan)

    def _submit(self, ex: Execution, plan: Plan, c: ev.SubmitTask) -> None:
        task = plan.tasks[c.task_id]
        spec = TaskSpec(ex.id, ex.namespace, ex.flow_id, task, c.task_run_id, c.attempt,
                        c.variables, self._secret_inputs(plan, ex))
        options = None
        if c.group is not None:
            actor = self.groups.get(c.group) or self._open_group(c.group)
            ref = actor.run.remote(spec)
        else:
            options = _options(plan, task)
            problem = self.cluster.check(options)  # a task no node can ever hold fails now
            if problem is not None:
                failed = {"state": "FAILED", "error": problem}
                asyncio.get_running_loop().call_soon(self._on_result, ex.id, c.task_run_id,
                                                     c.attempt, failed)
                return
            remote = _remote_run_task()
            if options:
                remote = remote.options(**options)
            ref = remote.remote(self._config_ref(), spec)
        self.inflight[(c.task_run_id, c.attempt)] = ref
        self.cluster.submitted(ex.get(c.task_run_id), c.attempt, ref, (c.task_run_id, c.attempt),
                               ex.id, options)
        asyncio.ensure_future(self._await_result(ex.id, c.task_run_id, c.attempt, ref))

    async def _await_result(self, execution_id: str, run_id: str, attempt: int, ref: Any) -> None:
        try:
            result = await ref
        except Exception as e:
            result = {"state": "FAILED", "error": _ray_error(e), "lost": _is_lost(e)}
        self.inflight.pop((run_id, attempt), None)
        self.cluster.settled((run_id, attempt))
        self._on_result(execution_id, run_id, attempt, result)

    def _on_result(self, execution_id: str, run_id: str, attempt: int, result: dict) -> None:
        ex = self.live.get(execution_id)
        if ex is None:
            return
        run = ex.get(run_id)
        if result.get("logs"):
            self._add_logs(execution_id, run_id, run.task_id if run else "", attempt,
                           result["logs"])
        for m in result.get("metrics") or ():
            self.pending_metrics.append({"executionId": execution_id, "taskRunId": run_id,
                                         "taskId": run.task_id if run else "",
                                         "timestamp": utcnow().isoformat(), **m})
        self._queue(ex, ev.TaskResult(run_id, attempt, State(result["state"]),
                                      result.get("outputs") or {}, result.get("error"),
                                      result.get("effects") or {}, result.get("node"),
                                      bool(result.get("lost"))))

    def _queue(self, ex: Execution, event: ev.Event) -> None:
        """Results arriving in the same loop turn are decided together (one ``Batch``)."""
        pending = self.pending_events.setdefault(ex.id, [])
        pending.append(event)
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._drain_events, ex.id)

    def _drain_events(self, execution_id: str) -> None:
        events = self.pending_events.pop(execution_id, [])
        ex = self.live.get(execution_id)
        if ex is not None and events:
            self._apply(ex, events[0] if len(events) == 1 else ev.Batch(tuple(events)))

    def _secret_inputs(self, plan: Plan, ex: Execution) -> list[str]:
        return [str(ex.inputs[i.id]) for i in plan.flow.inputs
                if i.type == "SECRET" and ex.inputs.get(i.id)]

    def _arm(self, execution_id: str, key: str, at: datetime, now: datetime) -> None:
        delay = max(0.0, (at - now).total_seconds())

        def fire() -> None:
            ex = self.live.get(execution_id)
            if ex is not None and key in ex.timers:
                self._apply(ex, ev.TimerFired(key))

        asyncio.get_running_loop().call_later(delay, fire)

    def _open_group(self, run_id: str) -> Any:
        import ray
        actor = ray.remote(GroupWorker).options(num_cpus=1).remote(self._worker_config())
        self.groups[run_id] = actor
        return actor

    async def _close_group(self, actor: Any) -> None:
        import ray
        try:
            await actor.close.remote()
        finally:
            ray.kill(actor)

    def _create_subflow(self, parent: Execution, c: ev.CreateSubflow) -> None:
        try:
            self._new_execution(c.namespace, c.flow_id, c.inputs, labels=c.labels,
                                execution_id=c.execution_id, revision=c.revision,
                                parent={"executionId": parent.id, "taskRunId": c.task_run_id}
                                if c.wait else None)
        except KrayError as e:
            if c.wait:
                self._apply(parent, ev.SubflowEnded(c.task_run_id, c.execution_id,
                                                    State.FAILED, {}))
                run = parent.get(c.task_run_id)
                if run is not None and not run.error:
                    run.error = f"subflow {c.namespace}/{c.flow_id}: {e}"
            else:
                log.error("subflow %s/%s not started: %s", c.namespace, c.flow_id, e)

    def _retry_execution(self, ex: Execution, attempt: int) -> None:
        try:
            self._new_execution(ex.namespace, ex.flow_id, ex.inputs, labels=ex.labels,
                                revision=ex.flow_revision, trigger=ex.trigger, resolved=True,
                                metadata={"attempt": attempt, "retryOf": ex.id})
        except KrayError as e:
            log.error("retry of execution %s failed: %s", ex.id, e)

    def _ended(self, ex: Execution, plan: Plan) -> None:
        uid = plan.flow.uid
        if ex.state.current != State.CANCELLED and not (
                ex.state.current == State.FAILED and ex.state.first(State.RUNNING) is None):
            self.running[uid] = max(0, self.running[uid] - 1)
        queue = self.queues.get(uid)
        while queue and (plan.flow.concurrency is None
                         or self.running[uid] < plan.flow.concurrency.limit):
            nxt = self.live.get(queue.popleft())
            if nxt is not None and nxt.state.current == State.QUEUED:
                self.running[uid] += 1
                self._apply(nxt, ev.Start())
        self._on_execution_end(ex)
        self._trigger_on_end(ex)
        if ex.parent_task_run:
            parent = self.live.get(ex.parent_task_run["executionId"])
            if parent is not None:
                self._apply(parent, ev.SubflowEnded(ex.parent_task_run["taskRunId"], ex.id,
                                                    ex.state.current, ex.outputs))
        self.live.pop(ex.id, None)
        self.recent[ex.id] = ex
        while len(self.recent) > self.config.recent:
            old, _ = self.recent.popitem(last=False)
            self.logs.pop(old, None)
            self.versions.pop(old, None)
            self.docs.pop(old, None)
            self.changed.pop(old, None)

    # ------------------------------------------------------------------ persistence
    def _mark(self, ex: Execution) -> None:
        self.dirty[ex.id] = ex
        self._notify(ex)
        if self.flush_task is None or self.flush_task.done():
            self.flush_task = asyncio.ensure_future(self._flush_later())

    def _doc(self, ex: Execution) -> dict:
        """``ex.to_dict()``, built once per version and shared by followers and the commit."""
        version = self.versions[ex.id]
        cached = self.docs.get(ex.id)
        if cached is None or cached[0] != version:
            cached = self.docs[ex.id] = (version, ex.to_dict())
        return cached[1]

    def _notify(self, ex: Execution) -> None:
        self.versions[ex.id] += 1
        event = self.changed.pop(ex.id, None)
        if event is not None:
            event.set()

    async def _flush_later(self) -> None:
        # Adaptive: never spend more than about a fifth of the time committing, however big
        # the executions being written are.
        await asyncio.sleep(max(self.config.flush_interval, 4 * self.flush_cost))
        await self._flush()

    async def _flush(self) -> None:
        """Group commit: everything that changed since the last one, in one transaction."""
        async with self.db_lock:
            if not (self.dirty or self.pending_logs or self.pending_metrics):
                return
            started = time.perf_counter()
            docs = [self._doc(ex) for ex in self.dirty.values()]
            logs, metrics = self.pending_logs, self.pending_metrics
            self.dirty, self.pending_logs, self.pending_metrics = {}, [], []
            await asyncio.to_thread(self.repo.write_batch, docs, logs, metrics)
            self.flush_cost = time.perf_counter() - started


def _state_of(doc: dict) -> State:
    return State(doc["state"])


def _outputs_of(doc: dict) -> dict:
    return doc.get("outputs") or {}


_LOST = {"WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
         "LocalRayletDiedError", "ActorDiedError", "ActorUnavailableError", "RayActorError",
         "ObjectFetchTimedOutError", "ObjectReconstructionFailedError"}


def _is_lost(e: Exception) -> bool:
    """A failure of the machinery (worker or node gone), not of the task."""
    return any(cls.__name__ in _LOST for cls in type(e).__mro__)


def _ray_error(e: Exception) -> str:
    name = type(e).__name__
    if "Cancel" in name:
        return "cancelled"
    if "WorkerCrashed" in name or "NodeDied" in name or "ActorDied" in name:
        return f"the worker was lost ({name})"
    cause = getattr(e, "cause", None)
    return f"{type(cause).__name__}: {cause}" if cause is not None else f"{name}: {e}"


_remote = None


def _remote_run_task() -> Any:
    global _remote
    if _remote is None:
        import ray
        _remote = ray.remote(max_retries=0)(run_task)
    return _remote


_option_cache: dict[tuple[int, str], dict] = {}


def _options(plan: Plan, task: Task) -> dict:
    key = (id(plan), task.id)
    if key not in _option_cache:
        _option_cache[key] = ray_options(task)
    return _option_cache[key]


def executor_actor(config: ExecutorConfig, *, create: bool = True) -> Any:
    """The cluster's executor: found by name, or created pinned to the head node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        return ray.get_actor(EXECUTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        if not create:
            raise
    head = next((n["NodeID"] for n in ray.nodes()
                 if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})), None)
    options: dict[str, Any] = dict(name=EXECUTOR_NAME, namespace=NAMESPACE, lifetime="detached",
                                   max_restarts=-1, max_task_retries=-1, num_cpus=0,
                                   max_concurrency=10_000, get_if_exists=True)
    if head is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(head, soft=False)
    return ray.remote(ExecutorService).options(**options).remote(config)


__all__ = ["ExecutorConfig", "ExecutorService", "executor_actor", "new_id", "FlowValidationError",
           "Flow", "TaskRun"]
