"""Run one flow to its end on Ray: what ``kray run`` does, reusable from Python and tests."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kray.engine.state import State
from kray.errors import FlowValidationError, InputValidationError
from kray.flow.model import Flow

DEFAULT_DATA_DIR = ".kray"


@dataclass
class RunOptions:
    inputs: dict[str, str] = field(default_factory=dict)  # raw; "@path" uploads a FILE input
    flows_dir: str | None = None
    address: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    labels: dict[str, str] = field(default_factory=dict)


def loopback_only() -> None:
    """Keep an embedded Ray on 127.0.0.1: without this, this Ray version swaps the loopback
    address given to ``ray.init`` for the machine's own address."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def ensure_ray(address: str | None = None) -> bool:
    """Join ``address`` / ``RAY_ADDRESS``, or start an embedded Ray on 127.0.0.1. True when
    this call started Ray (so the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = dict(namespace="kray", log_to_driver=False,
                                  logging_level="WARNING", configure_logging=True)
    if address:
        ray.init(address=address, **kwargs)
        return False
    # "local": an embedded Ray of our own, even if another cluster runs on this machine.
    loopback_only()
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
    return True


def load(path: str | Path, flows_dir: str | None = None) -> tuple[Flow, list[Flow]]:
    from kray.flow.parse import load_flow, load_flows
    flow = load_flow(path)
    others = load_flows(flows_dir) if flows_dir else []
    return flow, others


def prepare_inputs(flow: Flow, raw: dict[str, str], execution_id: str,
                   storage: Any | None) -> dict[str, Any]:
    """Validate inputs; ``@path`` values of FILE inputs are uploaded to ``storage`` (with no
    storage, only checked: used to fail fast before Ray starts)."""
    from kray.flow.inputs import resolve_inputs

    values: dict[str, Any] = {}
    for key, value in raw.items():
        values[key] = value[1:] if isinstance(value, str) and value.startswith("@") else value

    def upload(input_id: str, local: Path) -> str:
        path = (f"{flow.namespace.replace('.', '/')}/{flow.id}/executions/{execution_id}"
                f"/inputs/{input_id}/{local.name}")
        if storage is None:
            return "kray:///" + path
        return storage.put_file(path, local)

    return resolve_inputs(flow, values, upload=upload)


def run_flow(path: str | Path, options: RunOptions | None = None, *,
             on_update: Callable[[dict, list[dict]], None] | None = None) -> dict:
    """Validate, run to the end, return the final execution (``Execution.to_dict()``).

    Raises FlowValidationError / InputValidationError before any execution exists (and before
    Ray starts). On a cluster that already has an executor, that executor (and its storage)
    is used: a second driver never starts a rival one."""
    import ray

    from kray.executor import ExecutorConfig, executor_actor, new_id
    from kray.storage.internal import InternalStorage

    options = options or RunOptions()
    flow, others = load(path, options.flows_dir)
    execution_id = new_id()
    prepare_inputs(flow, options.inputs, execution_id, None)
    config = ExecutorConfig(data_dir=str(Path(options.data_dir).resolve()), envs=_envs())
    started = ensure_ray(options.address)
    try:
        executor = executor_actor(config)
        actual = ray.get(executor.ping.remote())["config"]
        storage = InternalStorage(ExecutorConfig(**actual).resolved_storage_url(),
                                  **actual["storage_options"])
        inputs = prepare_inputs(flow, options.inputs, execution_id, storage)
        for other in others:
            ray.get(executor.deploy.remote(other.source, other.path))
        ray.get(executor.deploy.remote(flow.source, str(path)))
        ray.get(executor.create_execution.remote(
            flow.namespace, flow.id, inputs, labels=options.labels,
            execution_id=execution_id, resolved=True))
        return follow(executor, execution_id, on_update)
    finally:
        if started:
            ray.shutdown()


def follow(executor: Any, execution_id: str,
           on_update: Callable[[dict, list[dict]], None] | None = None) -> dict:
    """Follow an execution until it ends, calling ``on_update(execution, new_logs)``."""
    import ray

    version, cursor, execution = -1, 0, None
    while True:
        update = ray.get(executor.follow.remote(execution_id, version, cursor))
        version, cursor = update["version"], update["logCursor"]
        if update["execution"] is not None:
            execution = update["execution"]
        if on_update is not None and execution is not None:
            on_update(execution, update["logs"])
        if update["done"] and execution is not None:
            return execution
        if update["execution"] is None and not update["logs"]:
            time.sleep(0.01)


def _envs() -> dict[str, str]:
    """Kestra's ``envs``: environment variables prefixed ENV_, lower-cased, prefix dropped."""
    return {k[4:].lower(): v for k, v in os.environ.items() if k.startswith("ENV_")}


def exit_code(state: str) -> int:
    return 0 if state in (State.SUCCESS, State.WARNING) else 1


__all__ = ["RunOptions", "run_flow", "follow", "ensure_ray", "exit_code",
           "FlowValidationError", "InputValidationError"]
