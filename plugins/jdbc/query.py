"""The shape every client-server SQL task shares (PostgreSQL, MySQL/MariaDB): connection
properties, secrets kept out of logs, and ``JdbcQuery``, which runs a script statement by
statement in one transaction and sends the last statement's result where ``fetchType`` says.

A driver module subclasses ``JdbcQuery`` and fills in the hooks: how to connect, which cursor
streams rows, and which Arrow type each result column gets in a Parquet file.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, ClassVar

from kray.errors import KrayError, TaskError
from kray.plugins.jdbc.results import (BATCH_ROWS, FETCH_LIMIT, FetchType, JsonlSink, ParquetSink,
                                       RowSink, SqlTask, StoreFormat, row_dict, too_many_rows)
from kray.plugins.jdbc.sqltext import Dialect, has_placeholders, split_statements
from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext


@dataclass
class Target:
    """Where to connect: driver keyword arguments, a display form without secrets, and the
    secrets to mask."""

    kwargs: dict[str, Any]
    display: str
    secrets: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # URL parameters the driver can't take


def hide(ctx: RunContext, *secrets: str | None) -> None:
    """Register values with the run's masker: they read as ``******`` in every log line, error
    and output from now on."""
    masker = getattr(ctx, "masker", None)
    if masker is None:
        return
    for secret in secrets:
        if secret:
            masker.add(secret)


class Connected(RunnableTask):
    """Connection properties: ``url`` (``jdbc:...`` or the driver's own URL form),
    ``username``, ``password``. The password, and one found in the URL, are masked in every
    log line, error and output of the run."""

    label: ClassVar[str] = "database"

    url: str
    username: str | None = None
    password: str | None = None

    def target(self, ctx: RunContext) -> Target:
        """Parse the rendered URL (a ``TaskError`` for a bad one) and hide its secrets."""
        url = ctx.render_str(self.url).strip()
        username = ctx.render_str(self.username) if self.username is not None else None
        password = ctx.render_str(self.password) if self.password is not None else None
        hide(ctx, password)
        target = self.parse_url(url, username, password)
        hide(ctx, *target.secrets)
        for name in target.dropped:
            ctx.logger.warning(f"url parameter '{name}' has no {self.label} driver equivalent; "
                               "ignored")
        return target

    @abc.abstractmethod
    def parse_url(self, url: str, username: str | None, password: str | None) -> Target:
        """The driver's connection arguments for this URL and these credentials."""

    @abc.abstractmethod
    def open(self, target: Target) -> Any:
        """A DB-API connection, not in autocommit mode."""

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        return ()

    def describe(self, error: BaseException) -> str:
        """A driver error as a message for the task's log."""
        return str(error).strip() or type(error).__name__

    @contextmanager
    def connection(self, ctx: RunContext) -> Iterator[Any]:
        """A connection whose transaction commits when the block ends and rolls back when it
        raises; driver errors become ``TaskError`` (masked by the run)."""
        target = self.target(ctx)
        ctx.logger.debug(f"connecting to {target.display}")
        errors = self.driver_errors()
        try:
            conn = self.open(target)
        except errors as e:
            raise TaskError(f"{self.label}: cannot connect to {target.display}: "
                            f"{self.describe(e)}") from None
        try:
            yield conn
            conn.commit()
        except errors as e:
            _rollback(conn)
            raise TaskError(f"{self.label}: {self.describe(e)}") from None
        except BaseException:
            _rollback(conn)
            raise
        finally:
            conn.close()


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; the first error matters
        pass


class JdbcQuery(Connected, SqlTask):
    """Run ``sql`` (one or more statements, one transaction) and handle the last statement's
    result by ``fetchType``: NONE; FETCH_ONE -> ``row``; FETCH -> ``rows``, ``size`` (at most
    10,000 rows); STORE -> ``uri``, ``size``, streamed from a server-side cursor into Parquet
    (default) or JSONL (``storeFormat``) in internal storage.

    ``parameters`` fill the driver's ``%(name)s`` placeholders (a statement gets them only if
    it has a placeholder; write ``%%`` for a literal ``%`` in such a statement).
    ``fetchSize``: rows per round trip of the server-side cursor. ``timeZoneId``: the
    session's time zone.
    """

    dialect: ClassVar[Dialect] = "postgres"

    fetch_size: int = BATCH_ROWS
    time_zone_id: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        sql = ctx.render_str(self.sql)
        statements = split_statements(sql, self.dialect)
        if not statements:
            raise TaskError("sql holds no statement")
        params = self.rendered_parameters(ctx)
        fetch_type = self.effective_fetch_type()
        with self.connection(ctx) as conn:
            if self.time_zone_id:
                self.set_time_zone(conn, ctx.render_str(self.time_zone_id))
            for statement in statements[:-1]:
                self.execute(conn, statement, params)
            last = statements[-1]
            if fetch_type is FetchType.NONE:
                self.execute(conn, last, params)
                return {}
            cursor = self.stream(conn, last, params, max(1, int(self.fetch_size)))
            try:
                return self._result(ctx, cursor, fetch_type)
            finally:
                cursor.close()

    def _args(self, statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return params if params and has_placeholders(statement, self.dialect) else None

    def execute(self, conn: Any, statement: str, params: dict[str, Any]) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute(statement, self._args(statement, params))
        finally:
            cursor.close()

    @abc.abstractmethod
    def stream(self, conn: Any, statement: str, params: dict[str, Any], batch: int) -> Any:
        """A cursor that has executed ``statement`` and reads its rows in batches from the
        server, not all at once."""

    @abc.abstractmethod
    def set_time_zone(self, conn: Any, zone: str) -> None: ...

    @abc.abstractmethod
    def arrow_types(self, cursor: Any) -> list[Any]:
        """One pyarrow type per result column; ``None`` stores the column as text."""

    def _result(self, ctx: RunContext, cursor: Any, fetch_type: FetchType) -> dict[str, Any]:
        if cursor.description is None:
            raise TaskError(f"fetchType {fetch_type} needs the last statement to return rows")
        columns = [d[0] for d in cursor.description]
        if fetch_type is FetchType.FETCH_ONE:
            first = cursor.fetchone()
            return {"row": None if first is None else row_dict(columns, first),
                    "size": 0 if first is None else 1}
        if fetch_type is FetchType.FETCH:
            rows = cursor.fetchmany(FETCH_LIMIT + 1)
            if len(rows) > FETCH_LIMIT:
                raise too_many_rows()
            return {"rows": [row_dict(columns, r) for r in rows], "size": len(rows)}
        return self._store(ctx, cursor, columns)

    def _store(self, ctx: RunContext, cursor: Any, columns: list[str]) -> dict[str, Any]:
        fmt = self.store_format
        uri = f"kray:///{ctx.storage_path(self.id + fmt.extension)}"
        batch = max(1, int(self.fetch_size))
        with storage_file(ctx, uri) as f:
            sink: RowSink = (ParquetSink(f, columns, self.arrow_types(cursor))
                             if fmt is StoreFormat.PARQUET else JsonlSink(f, columns))
            while rows := cursor.fetchmany(batch):
                sink.write(rows)
            size = sink.close()
        return {"uri": uri, "size": size}


@contextmanager
def storage_file(ctx: RunContext, uri: str) -> Iterator[IO[bytes]]:
    """A new storage file to stream into; nothing is left behind when the block raises
    (discarded on the local backend, deleted elsewhere)."""
    f = ctx.storage.open(uri, "wb")
    try:
        yield f
    except BaseException as exc:
        f.__exit__(type(exc), exc, exc.__traceback__)
        try:
            ctx.storage.delete(uri)
        except (KrayError, OSError):
            pass
        raise
    f.close()


def cursor_name() -> str:
    return f"kray_{uuid.uuid4().hex[:16]}"
