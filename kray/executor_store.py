"""The executor's store-side methods for the API: KV, namespace files and metrics, and the
errors the API's executor methods raise.

``StoreMixin`` is the base of ``QueriesMixin`` (``kray.executor_queries``), mixed into
``ExecutorService``, which owns the repository (DuckDB allows one process) and the storage.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from kray.engine.execution import Execution
from kray.errors import KrayError, StoragePathError
from kray.runcontext import namespace_file_path

if TYPE_CHECKING:
    from collections import OrderedDict, deque
    from collections.abc import Awaitable, Callable

    from kray.engine.plan import Plan
    from kray.storage.internal import InternalStorage
    from kray.storage.kv import KVStore
    from kray.storage.repository import Repository

STORAGE_SCHEME = "kray://"
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0, 900.0, 3600.0)
MAX_FILE_BYTES = 512 * 1024 * 1024  # a download or upload through the executor, at most


class NotFound(KrayError):
    """A KV key, a namespace file, an execution file or a task run that does not exist."""


class Conflict(KrayError):
    """A valid request that the current state forbids: killing an ended execution, resuming
    one that is not paused, creating a flow that exists..."""


class RequestError(KrayError):
    """A request argument the executor refuses; ``field`` names it."""

    def __init__(self, message: str, field: str = ""):
        self.field = field
        super().__init__(message)


class _Stats:
    """Counters since this executor started, for ``/metrics``."""

    def __init__(self) -> None:
        self.ended: dict[str, int] = defaultdict(int)
        self.task_runs: dict[str, int] = defaultdict(int)
        self.buckets = [0] * len(TASK_BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0

    def record(self, ex: Execution) -> None:
        self.ended[ex.state.current.value] += 1
        for run in ex.task_runs:
            if not run.attempts or not run.state.current.terminal:
                continue  # flowable runs have no attempts: only work done on workers counts
            self.task_runs[run.state.current.value] += 1
            end = run.state.end
            seconds = (end - run.state.start).total_seconds() if end else 0.0
            self.duration_sum += seconds
            self.duration_count += 1
            for i, bound in enumerate(TASK_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1


class StoreMixin:
    if TYPE_CHECKING:
        repo: Repository
        kvstore: KVStore
        storage: InternalStorage
        registry: Any
        live: dict[str, Execution]
        recent: OrderedDict[str, Execution]
        logs: dict[str, list[dict]]
        inflight: dict[Any, Any]
        queues: dict[str, deque[str]]
        dirty: dict[str, Execution]
        pending_logs: list[dict]
        db_lock: asyncio.Lock
        flush_cost: float
        changed: dict[str, asyncio.Event]

        # Methods of ExecutorService, as loose as the mixin needs them.
        _ensure_started: Callable[[], Awaitable[None]]
        _flush: Callable[[], Awaitable[None]]
        _load: Callable[[str], Awaitable[dict | None]]
        _plan_for: Callable[..., Plan]
        _new_execution: Callable[..., Execution]
        _doc: Callable[[Execution], dict]
        _mark: Callable[[Execution], None]
        deploy: Callable[..., Awaitable[dict]]
        get_execution: Callable[[str], Awaitable[dict]]
        execution_logs: Callable[[str], Awaitable[list[dict]]]
        create_execution: Callable[..., Awaitable[dict]]
        kill: Callable[[str], Awaitable[dict]]
        resume: Callable[..., Awaitable[dict]]
        restart: Callable[[str], Awaitable[dict]]

    async def _read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A repository call in a thread, serialised with the group commit."""
        async with self.db_lock:
            return await asyncio.to_thread(fn, *args, **kwargs)

    def _stats(self) -> _Stats:
        stats = getattr(self, "_api_stats", None)
        if stats is None:
            stats = self._api_stats = _Stats()
        return stats

    def _end_waiters(self) -> dict[str, list[asyncio.Future]]:
        waiters: dict[str, list[asyncio.Future]] | None = getattr(self, "_api_waiters", None)
        if waiters is None:
            waiters = {}
            self._api_waiters = waiters
        return waiters

    def _on_execution_end(self, ex: Execution) -> None:
        """Called by the executor as an execution reaches its terminal state: counted for
        ``/metrics``, and whoever waits for its end (``?wait=true``) is woken, once."""
        self._stats().record(ex)
        for future in self._end_waiters().pop(ex.id, ()):
            if not future.done():
                future.set_result(None)

    async def _read_file(self, rel: str, shown: str) -> bytes:
        try:
            size = await asyncio.to_thread(self.storage.size, rel)
            if size > MAX_FILE_BYTES:
                raise RequestError(f"{shown} is larger than {MAX_FILE_BYTES} bytes", "path")
            return await asyncio.to_thread(self.storage.read, rel)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"file not found: {shown}") from None

    # ------------------------------------------------------------------ KV
    async def kv_entries(self, namespace: str) -> list[dict]:
        await self._ensure_started()
        return await self._read(self.kvstore.entries, namespace)

    async def kv_entry(self, namespace: str, key: str) -> dict:
        await self._ensure_started()
        entry = await self._read(self.kvstore.get_entry, namespace, key)
        if entry is None:
            raise NotFound(f"no KV key '{key}' in namespace '{namespace}'")
        return entry

    async def kv_put(self, namespace: str, key: str, value: Any, *,
                     ttl_seconds: float | None = None, kv_type: str | None = None) -> dict:
        await self._ensure_started()
        await self._read(self.kvstore.set, namespace, key, value, ttl_seconds=ttl_seconds,
                         kv_type=kv_type)
        return await self.kv_entry(namespace, key)

    async def kv_delete(self, namespace: str, key: str) -> None:
        await self._ensure_started()
        if not await self._read(self.kvstore.delete, namespace, key):
            raise NotFound(f"no KV key '{key}' in namespace '{namespace}'")

    # ------------------------------------------------------------------ namespace files
    def _ns_path(self, namespace: str, path: str) -> str:
        try:
            return self.storage.path_of(namespace_file_path(namespace, path))
        except StoragePathError as e:
            raise RequestError(str(e), "path") from None

    async def namespace_files(self, namespace: str, folder: str = "") -> list[dict]:
        """Files of a namespace (under ``folder``), as paths relative to the namespace."""
        await self._ensure_started()
        root = self._ns_path(namespace, "x")[:-1]
        prefix = root + folder.strip("/") if folder.strip("/") else root.rstrip("/")
        if folder.strip("/"):
            self._ns_path(namespace, folder.strip("/"))  # validates the folder
        uris = await asyncio.to_thread(self.storage.list, prefix)
        start = len(STORAGE_SCHEME) + 1 + len(root)
        return [{"path": "/" + uri[start:], "uri": uri} for uri in uris]

    async def namespace_file(self, namespace: str, path: str) -> bytes:
        await self._ensure_started()
        return await self._read_file(self._ns_path(namespace, path), path)

    async def put_namespace_file(self, namespace: str, path: str, data: bytes) -> dict:
        await self._ensure_started()
        rel = self._ns_path(namespace, path)
        uri = await asyncio.to_thread(self.storage.put, rel, data)
        return {"path": "/" + path.lstrip("/"), "uri": uri, "size": len(data)}

    async def delete_namespace_file(self, namespace: str, path: str) -> None:
        await self._ensure_started()
        if not await asyncio.to_thread(self.storage.delete, self._ns_path(namespace, path)):
            raise NotFound(f"file not found: {path}")

    # ------------------------------------------------------------------ namespaces
    async def namespace_ids(self) -> list[dict]:
        """Namespaces holding flows, unexpired KV entries or namespace files, by id, each
        with its flow count (for the UI's pickers)."""
        await self._ensure_started()
        flows = await self._read(self.repo.list_flows, None)
        counts: dict[str, int] = defaultdict(int)
        for flow in flows:
            counts[flow["namespace"]] += 1
        for namespace in [*await self._read(self.kvstore.namespaces),
                          *await asyncio.to_thread(self._file_namespaces)]:
            counts.setdefault(namespace, 0)
        return [{"id": ns, "flows": counts[ns]} for ns in sorted(counts)]

    def _file_namespaces(self, max_depth: int = 12) -> list[str]:
        """Namespaces with a ``_files`` folder in storage: a walk that skips execution
        folders and the files themselves, so it stays short however many files there are."""
        import re

        from kray.flow.model import NAMESPACE_PATTERN
        from kray.runcontext import NAMESPACE_FILES

        fs, root = self.storage.fs, self.storage._full("").rstrip("/")
        found: list[str] = []
        for folder, dirs, _ in fs.walk(root, maxdepth=max_depth, topdown=True):
            rel = str(folder).rstrip("/")[len(root.rstrip("/")):].strip("/")
            if NAMESPACE_FILES in dirs and re.match(NAMESPACE_PATTERN, rel.replace("/", ".")):
                found.append(rel.replace("/", "."))
            dirs[:] = [d for d in dirs if d not in (NAMESPACE_FILES, "executions")]
        return found

    # ------------------------------------------------------------------ metrics
    async def metrics_snapshot(self) -> dict:
        await self._ensure_started()
        await self._flush()  # the counts include every change made so far

        def counts() -> dict[str, int]:
            with self.repo.transaction() as con:
                rows = con.execute("SELECT state, count(*) FROM executions "
                                   "GROUP BY state").fetchall()
            return {r[0]: int(r[1]) for r in rows}

        stats = self._stats()
        return {"executionsByState": await self._read(counts),
                "live": len(self.live), "queued": sum(len(q) for q in self.queues.values()),
                "inflightTasks": len(self.inflight),
                "pendingCommit": len(self.dirty) + len(self.pending_logs),
                "lastCommitSeconds": self.flush_cost,
                "ended": dict(stats.ended), "taskRuns": dict(stats.task_runs),
                "taskDuration": {"buckets": list(zip(TASK_BUCKETS, stats.buckets, strict=True)),
                                 "sum": stats.duration_sum, "count": stats.duration_count}}




__all__ = ["StoreMixin", "NotFound", "Conflict", "RequestError", "TASK_BUCKETS",
           "STORAGE_SCHEME", "MAX_FILE_BYTES"]
