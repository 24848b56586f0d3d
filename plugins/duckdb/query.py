"""``kray.duckdb.Query`` and ``kray.duckdb.Queries``: SQL on an embedded DuckDB.

The task's folder (``{{ workingDir }}``) holds the ``inputFiles`` and the ``outputFiles``;
internal storage is readable and writable from SQL as ``kray:///...`` (see ``filesystem``).
The database is in memory unless ``databaseUri`` names a file: a local path is used in place, a
``kray://`` URI is downloaded first and, when the run changed it (or ``outputDbFile`` is set),
uploaded to this task run's storage folder afterwards, its URI in the ``databaseUri`` output
for the next task to open.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import model_validator

from kray.errors import StoragePathError, TaskError
from kray.plugins.duckdb import connections
from kray.plugins.duckdb.filesystem import KrayFileSystem, rewrite_storage_literals
from kray.plugins.jdbc.results import (FETCH_LIMIT, FetchType, SqlTask, StoreFormat, row_dict,
                                       too_many_rows)
from kray.plugins.jdbc.sqltext import tokenize
from kray.storage.internal import KRAY_SCHEME, InternalStorage, validate_path

if TYPE_CHECKING:
    import duckdb

    from kray.context import RunContext

_JDBC_PREFIX = "jdbc:duckdb:"
_TMP_PREFIX = ".kray-tmp-"  # InternalStorage.list() skips files named so: in-progress writes


class Query(SqlTask):
    """Run SQL (one or more statements) on DuckDB.

    ``sql`` is a template; besides the usual variables it sees ``workingDir`` and
    ``outputFiles.<name>`` (where the SQL should write each output file).
    ``inputFiles`` maps file names to content, or to a ``kray://`` URI whose file is copied in;
    SQL reads them as ``{{ workingDir }}/name`` (or just ``name``: the folder is on DuckDB's
    ``file_search_path``). It may also be a template rendering to a JSON map.
    ``outputFiles`` lists names; each file is uploaded after the query: output
    ``outputFiles`` {name: uri}.
    ``fetchType`` applies to the last statement's result: FETCH_ONE -> ``row``; FETCH ->
    ``rows``, ``size`` (at most 10,000 rows); STORE -> ``uri``, ``size`` (Parquet, or JSONL with
    ``storeFormat``). ``parameters`` fill ``$name`` placeholders.
    ``databaseUri``: a DuckDB file, a local path or a ``kray://`` URI (see the module).
    ``url`` (Kestra's ``jdbc:duckdb:/path/file.db``) is accepted for a local file.
    ``timeZoneId`` sets DuckDB's ``TimeZone``.
    """

    type_name: ClassVar[str] = "kray.duckdb.Query"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.jdbc.duckdb.Query",)

    input_files: dict[str, str] | str | None = None
    output_files: list[str] | None = None
    database_uri: str | None = None
    url: str | None = None
    output_db_file: bool = False
    time_zone_id: str | None = None

    @model_validator(mode="after")
    def _one_database(self) -> Query:
        if self.database_uri and self.url and self.url.strip() != _JDBC_PREFIX:
            raise ValueError("set databaseUri or url, not both")
        if self.url and not self.url.startswith(_JDBC_PREFIX):
            raise ValueError(f"url must start with '{_JDBC_PREFIX}' (e.g. jdbc:duckdb:/data/my.db)")
        return self

    def run(self, ctx: RunContext) -> dict[str, Any]:
        workspace = _Workspace(ctx, self)
        sql = ctx.render_str(self.sql, {"outputFiles": workspace.output_paths})
        params = self.rendered_parameters(ctx)
        con = workspace.connect()
        try:
            storage = ctx.storage
            if isinstance(storage, InternalStorage) and storage.is_local:
                sql = rewrite_storage_literals(sql, storage.local_path)
            outputs = self.execute(ctx, con, sql, params)
        except _duckdb_error() as e:
            raise TaskError(f"DuckDB: {_error_message(e, ctx.storage)}") from None
        finally:
            con.close()
        outputs.update(workspace.finish())
        return outputs

    def execute(self, ctx: RunContext, con: duckdb.DuckDBPyConnection, sql: str,
                params: dict[str, Any]) -> dict[str, Any]:
        """Run every statement; the last one's result goes where ``fetchType`` says."""
        statements = con.extract_statements(sql)
        if not statements:
            raise TaskError("sql holds no statement")
        for statement in statements[:-1]:
            _run(con, statement, params)
        return _result(ctx, con, statements[-1], params, self.effective_fetch_type(),
                       self.store_format, self.id)


class Queries(Query):
    """Like ``Query``, but ``fetchType`` applies to every statement that returns rows (SELECT,
    SHOW, DESCRIBE...): output ``outputs``, a list with one ``{row | rows | uri, size}`` per
    such statement, in order (Kestra's ``Queries``)."""

    type_name: ClassVar[str] = "kray.duckdb.Queries"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.jdbc.duckdb.Queries",)

    def execute(self, ctx: RunContext, con: duckdb.DuckDBPyConnection, sql: str,
                params: dict[str, Any]) -> dict[str, Any]:
        import duckdb

        fetch_type = self.effective_fetch_type()
        results: list[dict[str, Any]] = []
        for statement in con.extract_statements(sql):
            if fetch_type is FetchType.NONE or statement.type != duckdb.StatementType.SELECT:
                _run(con, statement, params)
                continue
            name = f"{self.id}-{len(results)}"
            results.append(_result(ctx, con, statement, params, fetch_type,
                                   self.store_format, name))
        return {"outputs": results}


def _duckdb_error() -> type[Exception]:
    import duckdb
    return duckdb.Error


def _error_message(error: Exception, storage: Any) -> str:
    """DuckDB's message, less the Python traceback it embeds when the ``kray`` filesystem
    raised, and with local storage paths (from the rewrite) shown as ``kray:///`` URIs."""
    text = str(error).strip()
    if text.startswith("Traceback (most recent call last):"):
        text = text.splitlines()[-1]
    local = storage.local_path("x") if isinstance(storage, InternalStorage) else None
    return text.replace(local[:-1], KRAY_SCHEME + "/") if local else text


def _params_for(statement: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """The parameters one statement names (DuckDB rejects extra ones)."""
    wanted = statement.named_parameters
    if not wanted:
        return None
    missing = sorted(wanted - params.keys())
    if missing:
        raise TaskError(f"the SQL uses ${', $'.join(missing)} but parameters has no "
                        f"{', '.join(missing)}")
    return {k: params[k] for k in wanted}


def _run(con: duckdb.DuckDBPyConnection, statement: Any, params: dict[str, Any]) -> Any:
    """Execute one statement with its parameters."""
    args = _params_for(statement, params)
    return con.execute(statement) if args is None else con.execute(statement, args)


def _result(ctx: RunContext, con: duckdb.DuckDBPyConnection, statement: Any,
            params: dict[str, Any], fetch_type: FetchType, store_format: StoreFormat,
            name: str) -> dict[str, Any]:
    if fetch_type is FetchType.STORE:
        return _store(ctx, con, statement, params, store_format, name)
    if fetch_type is FetchType.NONE:
        _run(con, statement, params)
        return {}
    cursor, utc = _fetch_cursor(con, statement, params)
    columns = [d[0] for d in cursor.description or ()]
    try:
        if fetch_type is FetchType.FETCH_ONE:
            first = cursor.fetchone()
            return {"row": None if first is None else row_dict(columns, _utc(first, utc)),
                    "size": 0 if first is None else 1}
        rows = cursor.fetchmany(FETCH_LIMIT + 1)
    except ModuleNotFoundError as e:  # DuckDB needs pytz for TIMESTAMPTZ nested in lists...
        raise TaskError(f"DuckDB needs the '{e.name}' package to return these values; "
                        "install it, or cast them to VARCHAR in the SQL") from None
    if len(rows) > FETCH_LIMIT:
        raise too_many_rows()
    return {"rows": [row_dict(columns, _utc(r, utc)) for r in rows], "size": len(rows)}


def _fetch_cursor(con: duckdb.DuckDBPyConnection, statement: Any,
                  params: dict[str, Any]) -> tuple[Any, list[int]]:
    """Execute a statement whose rows will be fetched into Python.

    DuckDB returns TIMESTAMP WITH TIME ZONE values through pytz, which kray does not require:
    such top-level columns are converted to UTC timestamps in SQL instead, and marked as UTC
    again in Python (the indexes returned). Finding them costs a bind, not a run.
    """
    import duckdb

    if statement.type != duckdb.StatementType.SELECT:
        return _run(con, statement, params), []
    query = _without_semicolon(statement.query)
    args = _params_for(statement, params)
    relation = con.sql(query, params=args) if args else con.sql(query)
    utc = [i for i, t in enumerate(relation.types) if str(t) == "TIMESTAMP WITH TIME ZONE"]
    if not utc:
        return _run(con, statement, params), []
    names = relation.columns
    replace = ", ".join(f"timezone('UTC', {_ident(names[i])}) AS {_ident(names[i])}"
                        for i in utc)
    wrapped = f"SELECT * REPLACE ({replace}) FROM (\n{query}\n)"
    return (con.execute(wrapped, args) if args else con.execute(wrapped)), utc


def _utc(row: Any, columns: list[int]) -> Any:
    if not columns:
        return row
    fixed = list(row)
    for i in columns:
        if fixed[i] is not None:
            fixed[i] = fixed[i].replace(tzinfo=UTC)
    return fixed


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _store(ctx: RunContext, con: duckdb.DuckDBPyConnection, statement: Any,
           params: dict[str, Any], store_format: StoreFormat, name: str) -> dict[str, Any]:
    """COPY the statement's result straight to storage: DuckDB writes the file itself, with
    its own threads, to the local path (renamed into place when complete) or, on other
    backends, through the ``kray`` filesystem."""

    uri = f"{KRAY_SCHEME}/{ctx.storage_path(name + store_format.extension)}"
    options = "FORMAT parquet" if store_format is StoreFormat.PARQUET else "FORMAT json"
    storage = ctx.storage
    local = storage.local_path(uri)
    target = (os.path.join(os.path.dirname(local), f"{_TMP_PREFIX}{uuid.uuid4().hex}")
              if local is not None else uri)
    if local is not None:
        os.makedirs(os.path.dirname(local), exist_ok=True)
    try:
        size = _copy(con, statement, params, target, options)
    except BaseException:
        if local is not None and os.path.exists(target):
            os.unlink(target)
        raise
    if local is not None:
        os.replace(target, local)
    return {"uri": uri, "size": size}


def _copy(con: duckdb.DuckDBPyConnection, statement: Any, params: dict[str, Any],
          target: str, options: str) -> int:
    import duckdb

    if statement.type == duckdb.StatementType.SELECT:
        query = _without_semicolon(statement.query)
        copy = f"COPY (\n{query}\n) TO '{_quote(target)}' ({options})"
        counted = con.execute(copy, _params_for(statement, params)).fetchone()
        return int(counted[0]) if counted else 0
    # PRAGMA, CALL, EXPLAIN, PIVOT...: COPY cannot wrap them; their relation can be registered.
    relation = con.sql(statement.query, params=_params_for(statement, params) or None)
    con.register("__kray_result", relation)
    try:
        counted = con.execute(f"COPY __kray_result TO '{_quote(target)}' ({options})").fetchone()
        return int(counted[0]) if counted else 0
    finally:
        con.unregister("__kray_result")


def _without_semicolon(query: str) -> str:
    """The statement without its closing semicolon (comments after it may follow)."""
    toks = list(tokenize(query, "duckdb"))
    for i in range(len(toks) - 1, -1, -1):
        if toks[i].kind in ("space", "comment"):
            continue
        if toks[i].text == ";":
            del toks[i]
        break
    return "".join(t.text for t in toks)


def _quote(text: str) -> str:
    return text.replace("'", "''")


class _Workspace:
    """The task's files: input files in, output files and the database file out."""

    def __init__(self, ctx: RunContext, task: Query) -> None:
        self.ctx = ctx
        self.task = task
        self.dir = Path(ctx.working_dir)
        self.output_paths = {name: str(self.dir / _file_name(name, "outputFiles"))
                             for name in (ctx.render(task.output_files) or [])}
        self._write_inputs()
        self.database: str | None = None  # the file DuckDB opens; None: in memory
        self._storage_db: str | None = None  # the kray:// URI it came from
        self._stamp: tuple[int, int] | None = None
        self._prepare_database()

    def _write_inputs(self) -> None:
        files = self.ctx.render(self.task.input_files) if self.task.input_files else {}
        if isinstance(files, str):
            files = _json_map(files)
        for name, content in files.items():
            path = self.dir / _file_name(str(name), "inputFiles")
            path.parent.mkdir(parents=True, exist_ok=True)
            text = "" if content is None else str(content)
            if text.startswith(KRAY_SCHEME):
                self._download(text, path)
            else:
                path.write_text(text, encoding="utf-8")

    def _download(self, uri: str, path: Path) -> None:
        storage = self.ctx.storage
        local = storage.local_path(uri)
        try:
            if local is not None:
                shutil.copyfile(local, path)
            else:
                with storage.open(uri, "rb") as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError:
            raise TaskError(f"file not found: {uri}") from None

    def _prepare_database(self) -> None:
        given = self.ctx.render_str(self.task.database_uri) if self.task.database_uri else ""
        if not given and self.task.url:
            given = self.ctx.render_str(self.task.url)[len(_JDBC_PREFIX):]
            given = "" if given in ("", ":memory:", "memory:") else given
        if given.startswith(KRAY_SCHEME):
            name = given.rstrip("/").rsplit("/", 1)[-1] or "database.duckdb"
            path = self.dir / "_database" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._download(given, path)
            self.database, self._storage_db = str(path), given
            self._stamp = _stamp(path)
        elif given:
            path = Path(given).expanduser()
            self.database = str(path if path.is_absolute() else self.dir / path)
        elif self.task.output_db_file:
            self.database = str(self.dir / "_database" / f"{self.task.id}.duckdb")
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        try:
            con = connections.connect(self.database)
        except duckdb.Error as e:
            raise TaskError(f"DuckDB cannot open {self.database}: {e}") from None
        storage = self.ctx.storage
        if isinstance(storage, InternalStorage):
            con.register_filesystem(KrayFileSystem(storage))
        con.execute(f"SET file_search_path = '{_quote(str(self.dir))}'")
        if self.task.time_zone_id:
            zone = self.ctx.render_str(self.task.time_zone_id)
            con.execute(f"SET TimeZone = '{_quote(zone)}'")
        return con

    def finish(self) -> dict[str, Any]:
        """Upload the output files and, when asked or changed, the database file."""
        outputs: dict[str, Any] = {}
        storage = self.ctx.storage
        if self.output_paths:
            uploaded = {}
            for name, path in self.output_paths.items():
                if not os.path.isfile(path):
                    raise TaskError(f"output file '{name}' was not written: the SQL should "
                                    f"write it to '{{{{ outputFiles.{name} }}}}'")
                uploaded[name] = storage.put_file(self.ctx.storage_path(name), Path(path))
            outputs["outputFiles"] = uploaded
        if self.database is not None and (self.task.output_db_file or self._storage_db):
            db = Path(self.database)
            if self._storage_db and not self.task.output_db_file and _stamp(db) == self._stamp:
                outputs["databaseUri"] = self._storage_db  # unchanged: the same file will do
            else:
                outputs["databaseUri"] = storage.put_file(self.ctx.storage_path(db.name), db)
        return outputs


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _file_name(name: str, what: str) -> str:
    try:
        return validate_path(name)
    except StoragePathError as e:
        raise TaskError(f"{what}: {e}") from None


def _json_map(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        raise TaskError("inputFiles must be a map of file names to contents (or a JSON "
                        "object)") from None
    if not isinstance(value, dict):
        raise TaskError("inputFiles must be a map of file names to contents")
    return value



