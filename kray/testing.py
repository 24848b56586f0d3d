"""``kray.testing``: test tasks the way kray tests itself, with real components.

A ``TaskRunner`` runs one task in this process against real internal storage (a local folder),
a real KV store (a DuckDB file) and the real template engine, all under one folder::

    from kray.testing import TaskRunner

    def test_hello(tmp_path):
        runner = TaskRunner(tmp_path, secrets={"KRAY_SECRET_TOKEN": "s3cr3t"})
        result = runner.run({"id": "hello", "type": "io.kestra.plugin.core.log.Log",
                             "message": "Hello {{ inputs.name }}"},
                            variables={"inputs": {"name": "World"}})
        assert result.state == "SUCCESS"
        assert result.messages == ["Hello World"]

No Ray, no executor: flowable tasks and execution-level behaviour (retries, ``allowFailure``,
timeouts) are out of scope for a ``TaskRunner``; ``run_flow`` runs a whole flow in-process.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, Union

from kray.logs import TaskLogger
from kray.registry import PluginRegistry
from kray.runcontext import LocalRunContext, execute_task
from kray.storage.internal import InternalStorage
from kray.storage.kv import KVStore
from kray.storage.repository import Repository
from kray.storage.secrets import Masker, SecretStore
from kray.task import RunnableTask
from kray.templating import TemplateEngine

if TYPE_CHECKING:
    from kray.engine.execution import Execution
    from kray.flow.model import Flow

__all__ = ["TaskResult", "TaskRunner", "run_flow"]


@dataclass
class TaskResult:
    """What one task run produced."""

    outputs: dict[str, Any]
    logs: list[dict[str, Any]]  # {"timestamp", "level", "message"}, masked
    metrics: list[dict[str, Any]]
    effects: dict[str, Any]  # execution-level effects: "labels", "exit"
    state: str  # "SUCCESS", "WARNING" or "FAILED"
    error: str | None = None  # the masked failure message when FAILED
    task_run_id: str = ""
    working_dir: Path | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[str]:
        """The logged messages, in order."""
        return [line["message"] for line in self.logs]

    def messages_at(self, level: str) -> list[str]:
        return [line["message"] for line in self.logs if line["level"] == level]


class TaskRunner:
    """Runs single task instances in-process, under ``base_dir`` (a temporary folder when not
    given, removed by ``close()``).

    ``secrets`` is the environment the secret store reads (``KRAY_SECRET_<NAME>`` entries),
    never the process's own. ``storage`` and ``kv`` are public: put input files and KV entries
    there before a run, inspect them after. ``clock`` (returning an aware datetime) drives KV
    expiry, ``now()`` and log timestamps, so TTLs are testable without sleeping.
    ``registry`` resolves ``type`` when ``run`` gets a dict (default:
    ``PluginRegistry.default()``). ``log_level`` is the lowest level kept when the task sets
    no ``logLevel`` (INFO, as on a worker).
    """

    def __init__(self, base_dir: Path | None = None, *, secrets: Mapping[str, str] | None = None,
                 namespace: str = "test", flow_id: str = "test", log_level: str = "INFO",
                 registry: PluginRegistry | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._owns_base_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(
            tempfile.mkdtemp(prefix="kray-test-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.flow_id = flow_id
        self.log_level = log_level
        self.registry = registry
        self.clock = clock
        (self.base_dir / "storage").mkdir(exist_ok=True)
        self.storage = InternalStorage(str(self.base_dir / "storage"))
        self.repository = Repository(self.base_dir / "kray.duckdb")
        self.kv = KVStore(self.repository, clock=clock)
        self.secrets = SecretStore(environ=dict(secrets or {}))
        self.engine = TemplateEngine(clock=clock)

    def parse(self, task: RunnableTask | Mapping[str, Any]) -> RunnableTask:
        """A task instance from a dict as written in YAML (camelCase keys, ``type``)."""
        if isinstance(task, RunnableTask):
            return task
        data = dict(task)
        data.setdefault("id", "task")
        cls = self._registry().resolve(str(data.get("type", "")))
        parsed = cls.model_validate(data)
        if not isinstance(parsed, RunnableTask):
            raise TypeError(f"{data['type']} is a flowable task; TaskRunner runs runnable "
                            "tasks only")
        return parsed

    def run(self, task: RunnableTask | Mapping[str, Any],
            variables: dict[str, Any] | None = None) -> TaskResult:
        """Run ``task`` once (attempt 1) and return what it did; a failure is reported in the
        result (``state == "FAILED"``, ``error``), never raised."""
        instance = self.parse(task)
        execution_id = uuid.uuid4().hex[:22]
        task_run_id = uuid.uuid4().hex[:22]
        masker = Masker()
        logger = TaskLogger(masker=masker, min_level=instance.log_level or self.log_level,
                            clock=self.clock)
        ctx = LocalRunContext(
            execution_id=execution_id, namespace=self.namespace, flow_id=self.flow_id,
            task_id=instance.id, task_run_id=task_run_id, attempt=1,
            variables=self._variables(instance, execution_id, task_run_id, variables or {}),
            engine=self.engine, storage=self.storage, kv=self.kv, secrets=self.secrets,
            masker=masker, logger=logger, working_dir=self.base_dir / "runs" / task_run_id,
            error_logs=lambda: [line for line in logger.lines if line["level"] == "ERROR"])
        outcome = execute_task(instance, ctx)
        return TaskResult(outputs=outcome.outputs, logs=list(logger.lines),
                          metrics=list(ctx.metrics), effects=dict(ctx.effects),
                          state=outcome.state.value, error=outcome.error,
                          task_run_id=task_run_id, working_dir=ctx.working_dir)

    def _variables(self, task: RunnableTask, execution_id: str, task_run_id: str,
                   given: dict[str, Any]) -> dict[str, Any]:
        """The variables a worker would give this task, with ``given`` on top (shallow)."""
        base: dict[str, Any] = {
            "flow": {"id": self.flow_id, "namespace": self.namespace, "revision": 1},
            "execution": {"id": execution_id, "startDate": self._now().isoformat(),
                          "originalId": execution_id, "state": "RUNNING"},
            "task": {"id": task.id, "type": task.type},
            "taskrun": {"id": task_run_id, "value": None, "attemptsCount": 0,
                        "parentId": None, "iteration": None},
            "labels": {},
            "inputs": {},
            "outputs": {},
            "vars": {},
        }
        return {**base, **given}

    def _now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    def _registry(self) -> PluginRegistry:
        if self.registry is None:
            self.registry = PluginRegistry.default()
        return self.registry

    def close(self) -> None:
        """Close the DuckDB file; remove ``base_dir`` if the runner made it."""
        self.repository.close()
        if self._owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Flows ----------------------------------------------------------------------------------

FlowSource = Union["Flow", str, Path]


def _load(source: FlowSource, registry: PluginRegistry | None) -> Flow:
    from kray.flow.model import Flow
    from kray.flow.parse import load_flow, parse_flow

    if isinstance(source, Flow):
        return source
    if isinstance(source, Path):
        return load_flow(source, registry=registry)
    return parse_flow(source, registry=registry)


def run_flow(flow: FlowSource, inputs: Mapping[str, Any] | None = None, *,
             flows: Iterable[FlowSource] = (), base_dir: Path | None = None,
             labels: Mapping[str, str] | None = None,
             registry: PluginRegistry | None = None) -> Execution:
    """Run a whole flow to its end in this process and return the final ``Execution``.

    ``flow`` and each of ``flows`` (the flows its ``Subflow``/``ForEachItem`` tasks start) is a
    ``Flow``, YAML text (a ``str``) or a file (a ``Path``); they are validated first
    (``FlowValidationError`` with every issue). ``inputs`` are checked against the flow's
    input declarations (``InputValidationError``).

    It is ``kray.inline.InlineRunner``: the real executor core and the real task code,
    templating, storage and KV, without Ray, on a virtual clock (a ``Pause`` with a delay or a
    retry interval costs no time). Storage and the DuckDB file live under ``base_dir``: pass
    ``tmp_path`` to read the files the flow wrote (``InternalStorage(base_dir / "storage")``);
    without it a temporary folder is used and removed when the process exits.
    """
    from kray.inline import InlineRunner

    if base_dir is None:
        base_dir = Path(tempfile.mkdtemp(prefix="kray-flow-"))
        atexit.register(shutil.rmtree, base_dir, ignore_errors=True)
    runner = InlineRunner(base_dir, flows=[_load(f, registry) for f in flows])
    return runner.run(_load(flow, registry), dict(inputs or {}),
                      labels=dict(labels) if labels else None)
