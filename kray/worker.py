"""The worker side: run one attempt of a runnable task on a Ray worker.

A worker renders the task, runs it, writes its files to internal storage, then (for attempts
longer than ``CHECKPOINT_AFTER``) its result to ``_results/``, so that an executor restarted
meanwhile finds it instead of running it again, and only then returns the result. Logs travel back with the result; a task that runs longer
than ``LIVE_LOG_AFTER`` also streams them to the executor while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kray.engine.state import State

LIVE_LOG_AFTER = 0.5  # seconds
LIVE_LOG_EVERY = 0.25
# Results of attempts that ran at least this long are checkpointed to storage. Re-running a
# shorter one after an executor crash costs less than writing every result (delivery is
# at-least-once anyway).
CHECKPOINT_AFTER = 1.0
# Outputs travel inline with the result up to this size (JSON bytes); beyond it the largest
# values spill to internal storage and become kray:// URIs (read them with `read()`).
OUTPUT_INLINE_LIMIT = int(os.environ.get("KRAY_OUTPUT_INLINE_LIMIT", 256 * 1024))


@dataclass
class WorkerConfig:
    """What every worker needs, shipped once per executor (small and picklable)."""

    storage_url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    secrets_file: str | None = None
    executor: Any = None  # the executor actor handle (KV and live logs)
    kv: Any = None  # a KV store to use directly when there is no executor (in-process runs)


@dataclass
class TaskSpec:
    execution_id: str
    namespace: str
    flow_id: str
    task: Any  # the RunnableTask model
    task_run_id: str
    attempt: int
    variables: dict[str, Any]
    secrets: list[str] = field(default_factory=list)  # values to mask (already known ones)


def result_path(execution_id: str, task_run_id: str, attempt: int) -> str:
    return f"_results/{execution_id}/{task_run_id}/{attempt}.json"


_cache: dict[str, Any] = {}


def _shared(config: WorkerConfig) -> tuple[Any, Any, Any]:
    """Template engine, storage and secret store, built once per worker process."""
    from kray.storage.internal import InternalStorage
    from kray.storage.secrets import SecretStore
    from kray.templating import TemplateEngine

    key = f"{config.storage_url}|{config.secrets_file}"
    if _cache.get("key") != key:
        _cache.update(key=key, engine=TemplateEngine(),
                      storage=InternalStorage(config.storage_url, **config.storage_options),
                      secrets=SecretStore(secrets_file=config.secrets_file))
    return _cache["engine"], _cache["storage"], _cache["secrets"]


class ExecutorKV:
    """KV through the executor actor, which alone writes the DuckDB repository."""

    def __init__(self, executor: Any):
        self._executor = executor

    def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        import ray
        return ray.get(self._executor.kv.remote(op, *args, **kwargs))

    def get(self, namespace: str, key: str) -> Any:
        return self._call("get", namespace, key)

    def set(self, namespace: str, key: str, value: Any, ttl_seconds: float | None = None,
            overwrite: bool = True, kv_type: str | None = None) -> bool:
        return self._call("set", namespace, key, value, ttl_seconds=ttl_seconds,
                          overwrite=overwrite, kv_type=kv_type)

    def delete(self, namespace: str, key: str) -> bool:
        return self._call("delete", namespace, key)

    def keys(self, namespace: str, prefix: str = "") -> list[str]:
        return self._call("keys", namespace, prefix)


class _LiveLogs:
    """Streams a long task's log lines to the executor; short tasks never start the thread."""

    def __init__(self, executor: Any, spec: TaskSpec, logger: Any):
        self.executor, self.spec, self.logger = executor, spec, logger
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        if self.executor is not None:
            self.thread.start()

    def _loop(self) -> None:
        if self.stop.wait(LIVE_LOG_AFTER):
            return
        while not self.stop.is_set():
            self.flush()
            self.stop.wait(LIVE_LOG_EVERY)

    def flush(self) -> None:
        lines = self.logger.drain()
        if lines:
            self.executor.append_logs.remote(self.spec.execution_id, self.spec.task_run_id,
                                             self.spec.task.id, self.spec.attempt, lines)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def run_task(config: WorkerConfig, spec: TaskSpec, working_dir: str | None = None) -> dict:
    """Run one attempt and return its result (also written to storage)."""
    from kray.logs import TaskLogger
    from kray.runcontext import LocalRunContext, execute_task
    from kray.storage.secrets import Masker

    engine, storage, secrets = _shared(config)
    masker = Masker()
    for value in spec.secrets:
        masker.add(value)
    logger = TaskLogger(masker=masker, min_level=_level(spec.task.log_level))
    kv = ExecutorKV(config.executor) if config.executor is not None else config.kv
    live = _LiveLogs(config.executor, spec, logger)
    started = time.time()
    result: dict[str, Any] = {"state": State.SUCCESS.value, "outputs": {}, "error": None,
                              "effects": {}, "metrics": [], "node": _node_id()}
    ctx = LocalRunContext(
        execution_id=spec.execution_id, namespace=spec.namespace, flow_id=spec.flow_id,
        task_id=spec.task.id, task_run_id=spec.task_run_id, attempt=spec.attempt,
        variables=spec.variables, engine=engine, storage=storage, kv=kv, secrets=secrets,
        masker=masker, logger=logger,
        working_dir=Path(working_dir) if working_dir else None)
    live.start()
    try:
        outcome = execute_task(spec.task, ctx)
    finally:
        live.close()
        ctx.close()
    result.update(state=outcome.state.value, outputs=_spill(ctx, outcome.outputs),
                  error=outcome.error, effects=ctx.effects, metrics=ctx.metrics)
    result["logs"] = logger.drain()
    result["duration"] = time.time() - started
    if result["duration"] < CHECKPOINT_AFTER:
        return result
    try:
        storage.put(result_path(spec.execution_id, spec.task_run_id, spec.attempt),
                    json.dumps(result, default=str).encode())
    except Exception as e:  # the result still goes back; only crash recovery loses it
        result["logs"].append({"timestamp": None, "level": "WARN",
                               "message": f"could not checkpoint result: {e}"})
    return result


def _spill(ctx: Any, outputs: dict[str, Any]) -> dict[str, Any]:
    """Keep the execution context small: oversized output values go to storage."""
    sizes = {k: len(json.dumps(v, default=str)) for k, v in outputs.items()}
    if sum(sizes.values()) <= OUTPUT_INLINE_LIMIT:
        return outputs
    outputs = dict(outputs)
    total = sum(sizes.values())
    for key in sorted(sizes, key=sizes.get, reverse=True):
        if total <= OUTPUT_INLINE_LIMIT:
            break
        data = json.dumps(outputs[key], default=str).encode()
        uri = ctx.storage.put(ctx.storage_path(f"outputs/{key}.json"), data)
        ctx.logger.warning(f"output '{key}' ({len(data)} bytes) is larger than the inline "
                           f"limit and was stored at {uri}; read it with read()")
        outputs[key] = uri
        total -= sizes[key]
    return outputs


def _level(level: str | None) -> str:
    if level in (None, "WARNING"):
        return "WARN" if level else "INFO"
    return level


def _node_id() -> str | None:
    """The Ray node this runs on; outside Ray (in-process runs) the host name. Never starts
    Ray as a side effect."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return os.uname().nodename


class GroupWorker:
    """One WorkingDirectory: its children run here, in order, sharing one folder."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        self.dir = tempfile.mkdtemp(prefix="kray-wd-")

    def run(self, spec: TaskSpec) -> dict:
        spec.variables = {**spec.variables, "workingDir": self.dir}
        return run_task(self.config, spec, working_dir=self.dir)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
