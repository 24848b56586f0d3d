"""Read and management methods the API calls on the executor.

``QueriesMixin`` is mixed into ``ExecutorService``: the executor owns the repository and the
live executions, so searches, flow management, replay and change of status go through it,
never around it (KV, namespace files and metrics are in its base, ``StoreMixin``). Reads see
what is in memory first (a live execution is newer than its last commit); searches commit what
is pending before they query.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kray.engine.execution import Execution
from kray.engine.state import State
from kray.errors import (ExecutionNotFound, FlowNotFound, FlowValidationError,
                         InputValidationError, Issue, KrayError, StoragePathError)
from kray.executor_store import (STORAGE_SCHEME, Conflict, NotFound, RequestError,
                                 StoreMixin)
from kray.flow.inputs import resolve_inputs
from kray.flow.parse import parse_flow
from kray.flow.yaml import load_yaml
from kray.flowdocs import flow_document, split_documents
from kray.replay import seed_replay
from kray.storage.repository import LOG_LEVELS, InvalidQuery, iso, normalize_level


class QueriesMixin(StoreMixin):
    # ------------------------------------------------------------------ flows
    async def search_flows(self, namespace: str | None = None, q: str | None = None,
                           page: int = 1, size: int = 25) -> dict:
        await self._ensure_started()
        rows = await self._read(self.repo.list_flows, namespace)
        if q:
            needle = q.lower()
            rows = [r for r in rows if needle in r["id"].lower()
                    or needle in r["namespace"].lower()]
        total = len(rows)
        chosen = rows[(page - 1) * size: page * size]
        return {"results": [flow_document(r, with_source=False) for r in chosen],
                "total": total}

    async def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> dict:
        await self._ensure_started()
        row = await self._read(self.repo.get_flow, namespace, flow_id, revision)
        if row is None:
            raise FlowNotFound(f"flow {namespace}/{flow_id} not found"
                               + (f" at revision {revision}" if revision else ""))
        return flow_document(row)

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[dict]:
        await self._ensure_started()
        rows = await self._read(self.repo.flow_revisions, namespace, flow_id)
        if not rows:
            raise FlowNotFound(f"flow {namespace}/{flow_id} not found")
        return [flow_document(r) for r in rows]

    async def save_flow(self, source: str, *, namespace: str | None = None,
                        flow_id: str | None = None, create: bool = False) -> dict:
        """Create (``create``: refused if it exists) or update (the path's ``namespace`` and
        ``flow_id`` must match the source's, and the flow must exist) a flow."""
        await self._ensure_started()
        flow = parse_flow(source, registry=self.registry)
        if namespace is not None and flow_id is not None:
            issues = []
            positions = load_yaml(source).positions
            for key, given, expected in (("namespace", flow.namespace, namespace),
                                         ("id", flow.id, flow_id)):
                if given != expected:
                    line, col = positions.value((key,)) or (None, None)
                    issues.append(Issue(f"'{given}' does not match '{expected}' in the URL",
                                        key, None, line, col))
            if issues:
                raise FlowValidationError(issues)
        existing = await self._read(self.repo.get_flow, flow.namespace, flow.id)
        if create and existing is not None:
            raise Conflict(f"flow {flow.namespace}/{flow.id} already exists; "
                           "update it with PUT")
        if not create and existing is None:
            raise FlowNotFound(f"flow {flow.namespace}/{flow.id} not found")
        await self.deploy(source)
        return await self.get_flow(flow.namespace, flow.id)

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        await self._ensure_started()
        if not await self._read(self.repo.delete_flow, namespace, flow_id):
            raise FlowNotFound(f"flow {namespace}/{flow_id} not found")
        self._flow_changed(namespace, flow_id)

    def _validate_documents(self, source: str) -> list[tuple[Any, list[Issue], int]]:
        """Each YAML document of ``source``: (flow or None, issues with lines counted from
        the start of ``source``, index)."""
        out: list[tuple[Any, list[Issue], int]] = []
        for index, (offset, text) in enumerate(split_documents(source)):
            try:
                out.append((parse_flow(text, registry=self.registry), [], index))
            except FlowValidationError as e:
                issues = [Issue(i.message, i.path, i.file, i.line + offset
                                if i.line is not None else None, i.column) for i in e.issues]
                out.append((None, issues, index))
        return out

    async def validate_flows(self, source: str) -> list[dict]:
        """Every document of a (multi-document) YAML body, valid or with its issues."""
        await self._ensure_started()
        results = await asyncio.to_thread(self._validate_documents, source)
        return [{"index": index, "namespace": flow.namespace if flow else None,
                 "id": flow.id if flow else None, "valid": flow is not None,
                 "issues": [i.to_dict() for i in issues]} for flow, issues, index in results]

    async def sync_namespace(self, namespace: str, source: str, delete: bool = True) -> dict:
        """Make a namespace hold exactly the flows of ``source`` (Kestra's namespace update):
        all are validated first, nothing changes unless every one is valid."""
        await self._ensure_started()
        results = await asyncio.to_thread(self._validate_documents, source)
        issues: list[Issue] = []
        seen: set[str] = set()
        for flow, found, index in results:
            issues += [Issue(f"document {index}: {i.message}", i.path, i.file, i.line, i.column)
                       for i in found]
            if flow is not None and flow.namespace != namespace:
                issues.append(Issue(f"document {index}: namespace '{flow.namespace}' is not "
                                    f"'{namespace}'", "namespace"))
            elif flow is not None and flow.id in seen:
                issues.append(Issue(f"document {index}: flow '{flow.id}' appears twice", "id"))
            elif flow is not None:
                seen.add(flow.id)
        if issues:
            raise FlowValidationError(issues)
        updated = [await self.deploy(flow.source) for flow, _, _ in results]
        deleted = []
        if delete:
            for row in await self._read(self.repo.list_flows, namespace):
                if row["namespace"] == namespace and row["id"] not in seen:
                    await self.delete_flow(namespace, row["id"])
                    deleted.append({"namespace": namespace, "id": row["id"]})
        return {"updated": updated, "deleted": deleted}

    # ------------------------------------------------------------------ executions
    def _latest_revisions(self) -> dict[tuple[str, str], int]:
        cache: dict[tuple[str, str], int] | None = getattr(self, "_api_latest", None)
        if cache is None:
            cache = {}
            self._api_latest = cache
        return cache

    def _flow_changed(self, namespace: str, flow_id: str) -> None:
        """A flow was deployed or deleted: forget its cached latest revision, then let the
        scheduler know (its hook comes next in the MRO)."""
        self._latest_revisions().pop((namespace, flow_id), None)
        super()._flow_changed(namespace, flow_id)  # type: ignore[misc]

    def _latest_plan(self, namespace: str, flow_id: str, revision: int | None) -> Any:
        """The plan of a revision, or of the latest one without a repository query on the
        hot path (the latest revision is remembered until the flow changes)."""
        if revision is not None:
            return self._plan_for(namespace, flow_id, revision)
        latest = self._latest_revisions()
        known = latest.get((namespace, flow_id))
        plan = self._plan_for(namespace, flow_id, known)
        latest[(namespace, flow_id)] = plan.flow.revision or 1
        return plan

    async def start_execution(self, namespace: str, flow_id: str, inputs: dict[str, Any],
                              *, files: dict[str, tuple[str, bytes]] | None = None,
                              labels: dict[str, str] | None = None,
                              revision: int | None = None) -> dict:
        """Create an execution from an API request: inputs as sent (strings, mostly) and
        uploaded files, which are stored under the execution's folder once every input is
        valid. A FILE input given as text must be a ``kray://`` URI, never a local path."""
        await self._ensure_started()
        plan = self._latest_plan(namespace, flow_id, revision)
        issues = _file_input_issues(plan.flow.inputs, inputs, files or {})
        if issues:
            raise InputValidationError(issues)
        from kray.executor import new_id
        execution_id = new_id()
        if files:
            folder = execution_folder(namespace, flow_id, execution_id)
            inputs = await asyncio.to_thread(self._resolve_with_files, plan.flow.inputs,
                                             inputs, files, f"{folder}/inputs")
        return await self.create_execution(namespace, flow_id, inputs, labels=labels,
                                           execution_id=execution_id,
                                           revision=plan.flow.revision, resolved=bool(files))

    async def run_execution(self, namespace: str, flow_id: str, inputs: dict[str, Any],
                            *, wait: float, **kwargs: Any) -> dict:
        """``start_execution`` then ``wait_execution``, in one call (``?wait=true``)."""
        created = await self.start_execution(namespace, flow_id, inputs, **kwargs)
        return await self.wait_execution(created["id"], wait)

    def _resolve_with_files(self, declared: list[Any], inputs: dict[str, Any],
                            files: dict[str, tuple[str, bytes]], folder: str) -> dict:
        raw = dict(inputs)
        with tempfile.TemporaryDirectory(prefix="kray-upload-") as tmp:
            for input_id, (name, data) in files.items():
                local = Path(tmp) / input_id / _safe_name(name)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
                raw[input_id] = local

            def upload(input_id: str, path: Path) -> str:
                return self.storage.put_file(f"{folder}/{input_id}/{path.name}", path)

            return resolve_inputs(SimpleNamespace(inputs=declared), raw,  # type: ignore[arg-type]
                                  upload=upload)

    async def wait_execution(self, execution_id: str, timeout: float = 30.0,
                             document: bool = True) -> dict:
        """``{"execution", "done"}`` as soon as the execution is terminal, or after
        ``timeout`` seconds with its current state. Woken once, by the end itself (not by
        every change, and without the followers' coalescing): what ``?wait=true`` uses, and
        what an SSE follower waits on between two documents of a big execution
        (``document=False``: ``execution`` is None, so nothing big crosses to the API)."""
        await self._ensure_started()
        ex = self.live.get(execution_id) or self.recent.get(execution_id)
        if ex is None:
            doc = await self.get_execution(execution_id)
            return {"execution": doc if document else None,
                    "done": State(doc["state"]).terminal}
        if not ex.state.current.terminal and timeout > 0:
            ended = asyncio.get_running_loop().create_future()
            waiters = self._end_waiters().setdefault(execution_id, [])
            waiters.append(ended)
            try:
                await asyncio.wait({ended}, timeout=timeout)
            finally:
                if ended in waiters:
                    waiters.remove(ended)
                if not waiters and self._end_waiters().get(execution_id) is waiters:
                    del self._end_waiters()[execution_id]
            ex = self.live.get(execution_id) or self.recent.get(execution_id) or ex
        return {"execution": self._doc(ex) if document else None,
                "done": ex.state.current.terminal}

    async def search_executions(self, *, namespace: str | None = None,
                                flow_id: str | None = None, states: list[str] | None = None,
                                labels: dict[str, str] | None = None,
                                start_after: datetime | None = None,
                                start_before: datetime | None = None, page: int = 1,
                                size: int = 25, sort: str = "startDate:desc",
                                task_runs: bool = True) -> dict:
        """A page of executions; with ``task_runs`` false, each without its task runs but
        with their count by state (a list page needs no more, and a big ForEach's task
        runs would otherwise travel with every page)."""
        await self._ensure_started()
        await self._flush()  # the search sees every change made so far
        try:
            rows, total = await self._read(
                self.repo.search_executions, namespace=namespace, flow_id=flow_id,
                states=states, labels=labels, start_after=start_after,
                start_before=start_before, limit=size, offset=(page - 1) * size, sort=sort)
        except InvalidQuery as e:
            raise RequestError(str(e), "sort") from None
        results = []
        for doc in rows:
            ex = self.live.get(doc["id"]) or self.recent.get(doc["id"])
            doc = self._doc(ex) if ex is not None else doc
            if not task_runs:
                doc = _without_task_runs(doc)
            results.append(doc)
        return {"results": results, "total": total}

    async def _stored(self, execution_id: str) -> Execution:
        ex = self.live.get(execution_id) or self.recent.get(execution_id)
        if ex is not None:
            return ex
        doc = await self._load(execution_id)
        if doc is None:
            raise ExecutionNotFound(f"execution {execution_id} not found")
        return Execution.from_dict(doc)

    async def kill_execution(self, execution_id: str) -> dict:
        await self._ensure_started()
        ex = await self._stored(execution_id)
        if execution_id not in self.live:
            raise Conflict(f"execution {execution_id} already ended ({ex.state.current})")
        return await self.kill(execution_id)

    async def restart_execution(self, execution_id: str) -> dict:
        await self._ensure_started()
        ex = await self._stored(execution_id)
        if execution_id in self.live or ex.state.current not in (
                State.FAILED, State.KILLED, State.WARNING):
            raise Conflict(f"execution {execution_id} is {ex.state.current}: only a FAILED, "
                           "KILLED or WARNING execution can be restarted")
        return await self.restart(execution_id)

    async def resume_execution(self, execution_id: str, inputs: dict[str, Any] | None = None,
                               files: dict[str, tuple[str, bytes]] | None = None) -> dict:
        """Resume a PAUSED execution; ``inputs`` are checked against the paused task's
        ``onResume`` declarations."""
        await self._ensure_started()
        ex = await self._stored(execution_id)
        if execution_id not in self.live or ex.state.current != State.PAUSED:
            raise Conflict(f"execution {execution_id} is {ex.state.current}, not PAUSED")
        plan = self._plan_for(ex.namespace, ex.flow_id, ex.flow_revision)
        declared = [i for run in ex.task_runs if run.state.current == State.PAUSED
                    for i in getattr(plan.tasks[run.task_id], "on_resume", [])]
        inputs = dict(inputs or {})
        issues = _file_input_issues(declared, inputs, files or {})
        if issues:
            raise InputValidationError(issues)
        folder = f"{execution_folder(ex.namespace, ex.flow_id, ex.id)}/resume"
        resolved = await asyncio.to_thread(self._resolve_with_files, declared, inputs,
                                           files or {}, folder)
        return await self.resume(execution_id, resolved)

    async def replay_execution(self, execution_id: str, task_run_id: str | None = None,
                               revision: int | None = None) -> dict:
        """A new execution (``parentId`` the replayed one) of the same inputs; from
        ``task_run_id``, the task runs that ended before that one are kept, not run again."""
        await self._ensure_started()
        old = await self._stored(execution_id)
        if not old.state.current.terminal:
            raise Conflict(f"execution {execution_id} is {old.state.current}: only an ended "
                           "execution can be replayed")
        plan = self._plan_for(old.namespace, old.flow_id,
                              revision if revision is not None else old.flow_revision)
        if task_run_id is not None:
            if old.get(task_run_id) is None:
                raise RequestError(f"execution {execution_id} has no task run {task_run_id}",
                                   "taskRunId")
            missing = {r.task_id for r in old.task_runs} - set(plan.tasks)
            if missing:
                raise RequestError(f"revision {plan.flow.revision} has no task "
                                   f"{', '.join(sorted(missing))}", "revision")

        ex = self._new_execution(old.namespace, old.flow_id, old.inputs, labels=old.labels,
                                 revision=plan.flow.revision, trigger=old.trigger,
                                 resolved=True,
                                 seed=lambda new: seed_replay(new, old, task_run_id, plan))
        await self._flush()
        return self._doc(ex)

    async def change_status(self, execution_id: str, state: str) -> dict:
        """Move an ended execution to another terminal state (the transition table rules)."""
        await self._ensure_started()
        try:
            target = State(state)
        except ValueError:
            raise RequestError(f"unknown state {state!r}", "status") from None
        if not target.terminal:
            raise RequestError(f"{target} is not a terminal state", "status")
        ex = await self._stored(execution_id)
        if execution_id in self.live:
            raise Conflict(f"execution {execution_id} is {ex.state.current}: wait for its end "
                           "or kill it")
        from kray.executor import utcnow
        ex.state = ex.state.to(target, utcnow())  # IllegalTransition when not allowed
        ex.metadata["final"] = target.value
        if execution_id not in self.recent:
            self.recent[execution_id] = ex
        self._mark(ex)
        await self._flush()
        return self._doc(ex)

    async def execution_file(self, execution_id: str, path: str) -> tuple[str, bytes]:
        """A file of the execution's storage folder (and only of it): (name, content)."""
        await self._ensure_started()
        ex = await self._stored(execution_id)
        try:
            rel = self.storage.path_of(path)
        except StoragePathError as e:
            raise RequestError(str(e), "path") from None
        if not rel.startswith(execution_folder(ex.namespace, ex.flow_id, ex.id) + "/"):
            raise RequestError(f"{path} is not a file of execution {execution_id}", "path")
        return rel.rsplit("/", 1)[-1], await self._read_file(rel, path)

    # ------------------------------------------------------------------ logs
    async def logs_of(self, execution_id: str, *, min_level: str | None = None,
                      task_run_id: str | None = None, task_id: str | None = None) -> list[dict]:
        await self._ensure_started()
        await self._stored(execution_id)  # 404 for an unknown execution
        floor = LOG_LEVELS.index(_level(min_level, normalize_level)) if min_level else 0
        return [line for line in await self.execution_logs(execution_id)
                if LOG_LEVELS.index(_level(line.get("level", "INFO"), normalize_level)) >= floor
                and (task_run_id is None or line.get("taskRunId") == task_run_id)
                and (task_id is None or line.get("taskId") == task_id)]

    async def search_logs(self, *, namespace: str | None = None, flow_id: str | None = None,
                          execution_id: str | None = None, min_level: str | None = None,
                          q: str | None = None, start_after: datetime | None = None,
                          start_before: datetime | None = None, page: int = 1,
                          size: int = 50, sort: str = "desc") -> dict:
        await self._ensure_started()
        await self._flush()
        where: list[str] = []
        params: list[Any] = []
        if namespace is not None:
            where.append("(e.namespace = ? OR starts_with(e.namespace, ?))")
            params += [namespace, namespace + "."]
        for column, value in (("e.flow_id", flow_id), ("l.execution_id", execution_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if min_level:
            floor = LOG_LEVELS.index(_level(min_level, normalize_level))
            where.append("list_contains(?, l.level)")
            params.append(list(LOG_LEVELS[floor:]))
        if q:
            where.append("contains(lower(l.message), ?)")
            params.append(q.lower())
        if start_after is not None:
            where.append("l.ts >= ?")
            params.append(start_after)
        if start_before is not None:
            where.append("l.ts <= ?")
            params.append(start_before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if sort.lower() == "desc" else "ASC"
        base = f"FROM logs l LEFT JOIN executions e ON e.id = l.execution_id {clause}"
        sql = (f"SELECT l.execution_id, e.namespace, e.flow_id, l.task_run_id, l.task_id, "
               f"l.attempt, l.level, (l.ts AT TIME ZONE 'UTC'), l.message, l.seq {base} "
               f"ORDER BY l.seq {order} LIMIT ? OFFSET ?")

        def query() -> tuple[list[tuple], int]:
            with self.repo.transaction() as con:
                total = con.execute(f"SELECT count(*) {base}", params).fetchone()
                rows = con.execute(sql, params + [size, (page - 1) * size]).fetchall()
            return rows, int(total[0]) if total else 0

        rows, total = await self._read(query)
        keys = ("executionId", "namespace", "flowId", "taskRunId", "taskId", "attempt",
                "level", "timestamp", "message", "seq")
        return {"results": [dict(zip(keys, r[:7] + (iso(r[7]),) + r[8:], strict=True))
                            for r in rows],
                "total": total}


# ---------------------------------------------------------------------- helpers
def execution_folder(namespace: str, flow_id: str, execution_id: str) -> str:
    """Where an execution's files live in storage (inputs, task outputs)."""
    return f"{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}"


def _level(level: Any, normalize: Any) -> str:
    try:
        return str(normalize(level))
    except KrayError as e:
        raise RequestError(str(e), "minLevel") from None


def _safe_name(name: str) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isalnum() or c in "._-")[:200].lstrip(".")
    return cleaned or "file"


def _file_input_issues(declared: list[Any], inputs: dict[str, Any],
                       files: dict[str, Any]) -> list[Issue]:
    """A FILE input sent as text must name storage: a local path would read the server's
    disk."""
    issues = []
    for inp in declared:
        if inp.type != "FILE" or inp.id in files or inp.id not in inputs:
            continue
        value = inputs[inp.id]
        if value not in (None, "") and not (isinstance(value, str)
                                            and value.startswith(STORAGE_SCHEME)):
            issues.append(Issue(f"inputs.{inp.id}: upload the file, or give a kray:// URI",
                                f"inputs.{inp.id}"))
    for name in files:
        if not any(inp.id == name and inp.type == "FILE" for inp in declared):
            issues.append(Issue(f"inputs.{name}: not a FILE input of this flow",
                                f"inputs.{name}"))
    return issues


__all__ = ["QueriesMixin", "NotFound", "Conflict", "RequestError", "execution_folder"]


def _without_task_runs(doc: dict) -> dict:
    counts: dict[str, int] = {}
    for run in doc.get("taskRuns") or ():
        counts[run["state"]] = counts.get(run["state"], 0) + 1
    return {**{k: v for k, v in doc.items() if k != "taskRuns"}, "taskRuns": [],
            "taskRunCount": sum(counts.values()), "taskRunStates": counts}
