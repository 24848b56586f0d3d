"""The repository: one DuckDB file holding flows, executions, logs, metrics and KV.

It is owned by one process, the executor (DuckDB allows a single writing process); everything
else reads through the executor. Writes come in batches through ``write_batch``: one
transaction per batch, because a single-row DuckDB commit costs about as much as a Ray task.

Rows go in through DuckDB appenders (bound values, never SQL text) and come back as plain
JSON-able dicts with ISO-8601 timestamps in UTC.
"""

from __future__ import annotations

import enum
import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import duckdb

from kray.errors import KrayError
from kray.storage.migrations import migrate

try:  # optional: about 7x faster than the stdlib encoder on execution documents
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

TERMINAL_STATES = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR"}
_SORTS = {"start_date": "start_date", "startDate": "start_date", "end_date": "end_date",
          "endDate": "end_date", "state": "state", "namespace": "namespace",
          "flow_id": "flow_id", "flowId": "flow_id", "id": "id"}


class RepositoryError(KrayError):
    """A repository operation failed; for ``write_batch``, nothing of the batch was written."""


class DuplicateTriggerKey(RepositoryError):
    """Another execution already holds this trigger key (exactly-once schedules)."""

    def __init__(self, key: str, existing_id: str):
        self.key = key
        self.existing_id = existing_id
        super().__init__(f"trigger key {key!r} already belongs to execution {existing_id}")


class InvalidQuery(RepositoryError):
    """A search argument is out of range or not allowed (an unknown sort field, ...)."""


# -- JSON --------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON. NaN and infinities become null, as orjson does, so the result is always
    valid JSON whichever encoder ran."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=_default,  # type: ignore[no-any-return]
                                option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            pass  # e.g. an int beyond 64 bits: the stdlib encoder takes it
    try:
        return json.dumps(value, default=_default, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(value), default=_default, allow_nan=False,
                          ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    return orjson.loads(text) if orjson is not None else json.loads(text)


def iso(value: datetime | None) -> str | None:
    """A naive UTC timestamp from DuckDB (selected ``AT TIME ZONE 'UTC'``) as ISO-8601."""
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


def utc(name: str) -> str:
    """SQL selecting a TIMESTAMPTZ column as a naive UTC timestamp (no pytz needed)."""
    return f"({name} AT TIME ZONE 'UTC')"


# -- rows --------------------------------------------------------------------------------
def _execution_row(d: Mapping[str, Any]) -> tuple[Any, ...]:
    return (d["id"], d["namespace"], d["flowId"], d.get("flowRevision"), d["state"],
            d.get("startDate"), d.get("endDate"), dumps(d.get("labels") or {}),
            d.get("parentId"), d.get("originalId"), d.get("triggerKey"), dumps(d))


def normalize_level(level: Any) -> str:
    name = str(level).upper()
    name = _LEVEL_ALIASES.get(name, name)
    if name not in LOG_LEVELS:
        raise RepositoryError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    return name


def _log_row(d: Mapping[str, Any], seq: int, now: datetime) -> tuple[Any, ...]:
    return (d["executionId"], d.get("taskRunId"), d.get("taskId"), d.get("attempt"),
            normalize_level(d.get("level", "INFO")), d.get("timestamp") or now,
            d.get("message"), seq)


def _metric_row(d: Mapping[str, Any], now: datetime) -> tuple[Any, ...]:
    return (d["executionId"], d.get("taskRunId"), d.get("taskId"), d["name"],
            d.get("type") or "counter", float(d["value"]), dumps(d.get("tags") or {}),
            d.get("timestamp") or now)


class Repository:
    """Flows, executions, logs, metrics and KV in one DuckDB file, migrated on open.

    Thread-safe within its process (one lock around the connection); not shareable between
    processes. ``write_batch`` is the hot path; the rest are queries.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as e:  # typically: another process holds the file's lock
            raise RepositoryError(f"cannot open the repository {self.path}: {e}") from e
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            migrate(self._con)
            row = self._con.execute("SELECT coalesce(max(seq), 0) FROM logs").fetchone()
        except BaseException:
            self._con.close()
            raise
        self._seq = int(row[0]) if row else 0

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, locked, inside one transaction: committed on exit, rolled back on
        an exception. For stores built on this repository (``KVStore``)."""
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, list(params)).fetchall()

    # -- the hot path --------------------------------------------------------------------
    def write_batch(self, executions: Sequence[Mapping[str, Any]] = (),
                    logs: Sequence[Mapping[str, Any]] = (),
                    metrics: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write a batch in ONE transaction (group commit): all of it or, on any bad row,
        none of it (``RepositoryError``).

        ``executions`` are ``Execution.to_dict()`` dicts (plus an optional ``triggerKey``),
        upserted by id: the latest in the batch wins. ``logs`` are ``{executionId, taskRunId,
        taskId, attempt, level, timestamp, message}`` and get a repository-wide increasing
        ``seq``; ``metrics`` are ``{executionId, taskRunId, taskId, name, type, value, tags,
        timestamp}``. Timestamps are ISO strings or datetimes (naive means UTC).
        """
        if not (executions or logs or metrics):
            return
        now = datetime.now(UTC)
        try:
            latest = {d["id"]: d for d in executions}  # the latest version of each wins
            execution_rows = [_execution_row(d) for d in latest.values()]
            metric_rows = [_metric_row(d, now) for d in metrics]
        except (KeyError, TypeError, ValueError) as e:
            raise RepositoryError(f"bad row in batch, nothing written: {_describe(e)}") from e
        with self._lock:
            seq = self._seq
            try:
                log_rows = [_log_row(d, seq + i + 1, now) for i, d in enumerate(logs)]
            except (KeyError, TypeError, ValueError) as e:
                raise RepositoryError(f"bad log in batch, nothing written: {_describe(e)}") from e
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                if execution_rows:
                    self._upsert_executions(con, execution_rows)
                if log_rows:
                    _append(con, "logs", log_rows)
                if metric_rows:
                    _append(con, "metrics", metric_rows)
                con.execute("COMMIT")
            except BaseException as e:
                con.execute("ROLLBACK")
                if isinstance(e, (duckdb.Error, TypeError, ValueError, OverflowError)):
                    raise RepositoryError(f"batch rejected, nothing written: {e}") from e
                raise
            self._seq = seq + len(log_rows)

    @staticmethod
    def _upsert_executions(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
        """Upsert as delete + append, in the caller's transaction.

        Measured on DuckDB 2.0 (``tests/storage/bench_repository.py --compare``): on this
        table ``INSERT ... ON CONFLICT DO UPDATE`` averages about 3 s per batch of 500
        forty-KB documents (5-7 s on every other batch), delete + append under 0.2 s. One
        query finds the rows being replaced and the trigger keys in use: a trigger key is set
        when an execution is created, a later version without one keeps it, and a key already
        held by another execution rejects the batch (``DuplicateTriggerKey``).
        """
        ids = [row[0] for row in rows]
        keys = [row[10] for row in rows if row[10] is not None]
        holders: dict[str, str] = {}
        for row in rows:
            if row[10] is not None and holders.setdefault(row[10], row[0]) != row[0]:
                raise DuplicateTriggerKey(row[10], holders[row[10]])
        found = con.execute("SELECT id, trigger_key FROM executions WHERE list_contains(?, id)"
                            " OR list_contains(?, trigger_key)", [ids, keys]).fetchall()
        stored_key = {eid: key for eid, key in found}
        for key, eid in holders.items():
            owner = next((i for i, k in found if k == key), eid)
            if owner != eid:
                raise DuplicateTriggerKey(key, owner)
        replaced = [eid for eid in ids if eid in stored_key]
        if replaced:
            for i, row in enumerate(rows):
                if row[10] is None and stored_key.get(row[0]) is not None:
                    rows[i] = row[:10] + (stored_key[row[0]],) + row[11:]
            con.execute("DELETE FROM executions WHERE list_contains(?, id)", [replaced])
        _append(con, "executions", rows)

    # -- executions ----------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT data FROM executions WHERE id = ?", [execution_id])
        return loads(rows[0][0]) if rows else None

    def find_by_trigger_key(self, key: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT data FROM executions WHERE trigger_key = ?", [key])
        return loads(rows[0][0]) if rows else None

    def existing_trigger_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` already have their execution: one query for a whole batch of
        realtime events (a redelivered message is recognised by its key)."""
        if not keys:
            return set()
        marks = ", ".join("?" * len(keys))
        rows = self._fetch(f"SELECT trigger_key FROM executions WHERE trigger_key IN ({marks})",
                           list(keys))
        return {row[0] for row in rows}

    def load_executions(self, *, non_terminal: bool = False) -> list[dict[str, Any]]:
        """Every execution, oldest first; with ``non_terminal``, only those not yet ended
        (what a restarted executor must pick up again)."""
        where = "WHERE NOT list_contains(?, state)" if non_terminal else ""
        params = [list(TERMINAL_STATES)] if non_terminal else []
        rows = self._fetch(f"SELECT data FROM executions {where} "
                           "ORDER BY start_date NULLS LAST, id", params)
        return [loads(r[0]) for r in rows]

    def search_executions(
            self, *, namespace: str | None = None, flow_id: str | None = None,
            states: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
            start_after: datetime | None = None, start_before: datetime | None = None,
            limit: int = 50, offset: int = 0, sort: str = "start_date:desc",
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of executions and the total that match.

        ``namespace`` matches that namespace and its children (``company`` matches
        ``company.team``), as in Kestra; ``labels`` must all match; ``start_after`` and
        ``start_before`` bound the start date inclusively. ``sort`` is ``field[:asc|desc]``
        with field one of start_date, end_date, state, namespace, flow_id, id (camelCase
        accepted).
        """
        if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 \
                or offset < 0:
            raise InvalidQuery("limit and offset must be integers >= 0")
        order = _order_by(sort)
        where: list[str] = []
        params: list[Any] = []
        if namespace is not None:
            where.append("(namespace = ? OR starts_with(namespace, ?))")
            params += [namespace, namespace + "."]
        if flow_id is not None:
            where.append("flow_id = ?")
            params.append(flow_id)
        if states:
            where.append("list_contains(?, state)")
            params.append([str(s) for s in states])
        for key, value in (labels or {}).items():
            # A JSON pointer, escaped per RFC 6901, so a key is data and never a path.
            where.append("json_extract_string(labels, ?) = ?")
            params += ["/" + str(key).replace("~", "~0").replace("/", "~1"), str(value)]
        if start_after is not None:
            where.append("start_date >= ?")
            params.append(start_after)
        if start_before is not None:
            where.append("start_date <= ?")
            params.append(start_before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total_row = self._con.execute(
                f"SELECT count(*) FROM executions {clause}", params).fetchone()
            rows = self._con.execute(
                f"SELECT data FROM executions {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                params + [limit, offset]).fetchall()
        return [loads(r[0]) for r in rows], int(total_row[0]) if total_row else 0

    # -- logs and metrics ----------------------------------------------------------------
    def logs(self, execution_id: str, *, after_seq: int | None = None,
             min_level: str | None = None, task_run_id: str | None = None,
             limit: int = 10_000) -> list[dict[str, Any]]:
        """An execution's log lines in ``seq`` order; ``after_seq`` resumes a follower."""
        where = ["execution_id = ?"]
        params: list[Any] = [execution_id]
        if after_seq is not None:
            where.append("seq > ?")
            params.append(int(after_seq))
        if min_level is not None:
            floor = LOG_LEVELS.index(normalize_level(min_level))
            where.append("list_contains(?, level)")
            params.append(list(LOG_LEVELS[floor:]))
        if task_run_id is not None:
            where.append("task_run_id = ?")
            params.append(task_run_id)
        rows = self._fetch(
            f"SELECT execution_id, task_run_id, task_id, attempt, level, {utc('ts')}, "
            f"message, seq FROM logs WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            params + [int(limit)])
        return [{"executionId": r[0], "taskRunId": r[1], "taskId": r[2], "attempt": r[3],
                 "level": r[4], "timestamp": iso(r[5]), "message": r[6], "seq": r[7]}
                for r in rows]

    def metrics(self, execution_id: str) -> list[dict[str, Any]]:
        rows = self._fetch(
            f"SELECT execution_id, task_run_id, task_id, name, type, value, tags, {utc('ts')} "
            "FROM metrics WHERE execution_id = ? ORDER BY ts, rowid", [execution_id])
        return [{"executionId": r[0], "taskRunId": r[1], "taskId": r[2], "name": r[3],
                 "type": r[4], "value": r[5], "tags": loads(r[6]) or {},
                 "timestamp": iso(r[7])} for r in rows]

    # -- flows ---------------------------------------------------------------------------
    def save_flow(self, namespace: str, flow_id: str, source: str) -> int:
        """Store a flow's source and return its revision: a new revision only when the
        source differs from the latest (or the flow was deleted)."""
        with self.transaction() as con:
            latest = con.execute(
                "SELECT revision, source, deleted FROM flows WHERE namespace = ? AND id = ? "
                "ORDER BY revision DESC LIMIT 1", [namespace, flow_id]).fetchone()
            if latest and not latest[2] and latest[1] == source:
                return int(latest[0])
            revision = int(latest[0]) + 1 if latest else 1
            con.execute("INSERT INTO flows VALUES (?, ?, ?, ?, FALSE, ?)",
                        [namespace, flow_id, revision, source, datetime.now(UTC)])
            return revision

    def get_flow(self, namespace: str, flow_id: str,
                 revision: int | None = None) -> dict[str, Any] | None:
        """A revision of a flow; without ``revision``, the latest, or None if deleted."""
        if revision is None:
            rows = self._fetch(f"{_FLOW_SELECT} WHERE namespace = ? AND id = ? "
                               "ORDER BY revision DESC LIMIT 1", [namespace, flow_id])
            return _flow(rows[0]) if rows and not rows[0][4] else None
        rows = self._fetch(f"{_FLOW_SELECT} WHERE namespace = ? AND id = ? AND revision = ?",
                           [namespace, flow_id, int(revision)])
        return _flow(rows[0]) if rows else None

    def list_flows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The latest revision of every flow not deleted, by namespace and id; ``namespace``
        also matches its children."""
        where = ""
        params: list[Any] = []
        if namespace is not None:
            where = "WHERE namespace = ? OR starts_with(namespace, ?)"
            params = [namespace, namespace + "."]
        rows = self._fetch(
            f"SELECT * FROM ({_FLOW_SELECT} {where} QUALIFY row_number() OVER "
            "(PARTITION BY namespace, id ORDER BY revision DESC) = 1) WHERE NOT deleted "
            "ORDER BY namespace, id", params)
        return [_flow(r) for r in rows]

    def flow_revisions(self, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        """Every revision, oldest first, deletion markers included (``deleted`` true)."""
        rows = self._fetch(f"{_FLOW_SELECT} WHERE namespace = ? AND id = ? ORDER BY revision",
                           [namespace, flow_id])
        return [_flow(r) for r in rows]

    def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Delete a flow by adding a revision marked deleted (history is kept, as in
        Kestra); False when there is no such flow or it is already deleted."""
        with self.transaction() as con:
            latest = con.execute(
                "SELECT revision, source, deleted FROM flows WHERE namespace = ? AND id = ? "
                "ORDER BY revision DESC LIMIT 1", [namespace, flow_id]).fetchone()
            if not latest or latest[2]:
                return False
            con.execute("INSERT INTO flows VALUES (?, ?, ?, ?, TRUE, ?)",
                        [namespace, flow_id, int(latest[0]) + 1, latest[1],
                         datetime.now(UTC)])
            return True


_FLOW_SELECT = f"SELECT namespace, id, revision, source, deleted, {utc('updated')} AS updated " \
               "FROM flows"


def _flow(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"namespace": row[0], "id": row[1], "revision": row[2], "source": row[3],
            "deleted": bool(row[4]), "updated": iso(row[5])}


def _order_by(sort: str) -> str:
    field, _, direction = str(sort).partition(":")
    column = _SORTS.get(field)
    direction = (direction or "asc").lower()
    if column is None or direction not in ("asc", "desc"):
        raise InvalidQuery(f"cannot sort by {sort!r}: use field[:asc|desc] with field one of "
                           f"{', '.join(sorted(set(_SORTS.values())))}")
    return f"{column} {direction.upper()} NULLS LAST, id {direction.upper()}"


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
    appender = con.appender(table)
    try:
        appender.append_rows(rows)
        appender.flush()
    except BaseException:
        appender.clear()
        raise


def _describe(e: BaseException) -> str:
    return f"missing field {e}" if isinstance(e, KeyError) else str(e)
