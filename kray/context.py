"""What a runnable task sees while it runs: ``RunContext``.

The worker builds the real one (``kray.worker``); ``kray.testing`` builds one for tests. Both
honour this interface, which is all a plugin may rely on.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Protocol

from kray.engine.state import State


class TaskLogger(Protocol):
    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


class KVStore(Protocol):
    """Typed values per namespace, optional TTL. Values are JSON-able."""

    def get(self, namespace: str, key: str) -> Any | None: ...
    def set(self, namespace: str, key: str, value: Any, ttl_seconds: float | None = None,
            overwrite: bool = True, kv_type: str | None = None) -> bool: ...
    def delete(self, namespace: str, key: str) -> bool: ...
    def keys(self, namespace: str, prefix: str = "") -> list[str]: ...


class Storage(Protocol):
    """Internal storage, addressed by ``kray://`` URIs (see ``kray.storage.internal``)."""

    def put(self, path: str, data: bytes) -> str: ...
    def put_file(self, path: str, local: Path) -> str: ...
    def read(self, uri: str) -> bytes: ...
    def open(self, uri: str, mode: str = "rb") -> Any: ...
    def exists(self, uri: str) -> bool: ...
    def size(self, uri: str) -> int: ...
    def delete(self, uri: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def local_path(self, uri: str) -> str | None: ...


class RunContext(abc.ABC):
    """The task's window on the world. Attributes are set by whoever builds the context."""

    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    task_run_id: str
    attempt: int
    variables: dict[str, Any]  # the template context: inputs, outputs, vars, taskrun, ...
    logger: TaskLogger
    storage: Storage
    kv: KVStore
    working_dir: Path
    masker: Any  # kray.storage.secrets.Masker: register values that must never be shown

    def __init__(self) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.state_override: State | None = None  # e.g. WARNING from a task that warns
        self.effects: dict[str, Any] = {}  # execution-level effects: labels, exit state

    @abc.abstractmethod
    def render(self, value: Any, extra: dict[str, Any] | None = None) -> Any:
        """Render a template string, or every string inside a list/dict, against
        ``variables`` (plus ``extra``)."""

    def render_str(self, value: Any, extra: dict[str, Any] | None = None) -> str:
        out = self.render(value, extra)
        return "" if out is None else str(out)

    def metric(self, name: str, value: float, type: str = "counter", **tags: str) -> None:
        self.metrics.append({"name": name, "value": value, "type": type, "tags": tags})

    def storage_path(self, name: str) -> str:
        """Where this task run's files go, relative to the storage root."""
        return (f"{self.namespace.replace('.', '/')}/{self.flow_id}/executions/"
                f"{self.execution_id}/tasks/{self.task_id}/{self.task_run_id}/{name}")
