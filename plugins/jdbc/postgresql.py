"""PostgreSQL: ``kray.jdbc.postgresql.Query`` and ``kray.jdbc.postgresql.CopyIn``, on psycopg 3.

``url`` is Kestra's ``jdbc:postgresql://host:port/db?user=...`` (JDBC parameters translated to
libpq's where there is an equivalent), a libpq URL (``postgresql://user@host/db``) or a libpq
keyword string (``host=... dbname=...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, field_validator

from kray.errors import TaskError
from kray.plugins.jdbc.query import Connected, JdbcQuery, Target, cursor_name
from kray.plugins.jdbc.sources import FileFormat, check_uri, read_batches

if TYPE_CHECKING:
    from kray.context import RunContext

# libpq connection keywords a URL may carry as they are.
_LIBPQ = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "connect_timeout",
    "client_encoding", "options", "application_name", "fallback_application_name",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl",
    "sslpassword", "requiressl", "gssencmode", "target_session_attrs", "service"})
# JDBC driver names -> libpq keywords.
_JDBC = {"ApplicationName": "application_name", "applicationName": "application_name",
         "connectTimeout": "connect_timeout", "sslcert": "sslcert", "sslkey": "sslkey",
         "sslrootcert": "sslrootcert", "sslpassword": "sslpassword"}
_ROW_QUERIES = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
CHUNK = 1 << 20


class PostgresConnection(Connected):
    """Connects to PostgreSQL (``url``, ``username``, ``password``)."""

    label: ClassVar[str] = "PostgreSQL"

    def parse_url(self, url: str, username: str | None, password: str | None) -> Target:
        if url.startswith("jdbc:"):
            url = url[len("jdbc:"):]
        dropped: list[str] = []
        if url.startswith(("postgresql://", "postgres://")):
            kwargs = _from_url(url, dropped)
        elif "=" in url:
            from psycopg.conninfo import conninfo_to_dict
            try:
                kwargs = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
            except Exception as e:  # psycopg.ProgrammingError on bad syntax
                raise TaskError(f"url is not a valid libpq connection string: {e}") from None
        else:
            raise TaskError("url must look like jdbc:postgresql://host:5432/db, "
                            "postgresql://host:5432/db or 'host=... dbname=...'")
        if username:
            kwargs["user"] = username
        if password is not None:
            kwargs["password"] = password
        kwargs.setdefault("connect_timeout", 10)
        display = (f"postgresql://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 5432)}"
                   f"/{kwargs.get('dbname', '')}")
        if kwargs.get("user"):
            display += f" as {kwargs['user']}"
        secrets = [str(kwargs[k]) for k in ("password", "sslpassword") if kwargs.get(k)]
        return Target(kwargs, display, secrets, dropped)

    def open(self, target: Target) -> Any:
        import psycopg

        return psycopg.connect(autocommit=False, **target.kwargs)

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)


def _from_url(url: str, dropped: list[str]) -> dict[str, Any]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise TaskError(f"url is not a valid PostgreSQL URL: {e}") from None
    kwargs: dict[str, Any] = {}
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port:
        kwargs["port"] = port
    if parts.path.strip("/"):
        kwargs["dbname"] = unquote(parts.path.strip("/"))
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _LIBPQ:
            kwargs[key] = value
        elif key in _JDBC:
            kwargs[_JDBC[key]] = value
        elif key == "ssl":
            if value.lower() in ("true", "1", ""):
                kwargs.setdefault("sslmode", "require")
        elif key == "currentSchema":
            kwargs["options"] = f"-c search_path={value}"
        else:
            dropped.append(key)
    return kwargs


class Query(PostgresConnection, JdbcQuery):
    """Run SQL on PostgreSQL; see ``JdbcQuery`` for ``fetchType``, ``storeFormat``,
    ``parameters`` (``%(name)s``) and ``fetchSize``. SELECT, WITH, VALUES and TABLE results are
    read through a server-side cursor, ``fetchSize`` rows at a time."""

    type_name: ClassVar[str] = "kray.jdbc.postgresql.Query"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.jdbc.postgresql.Query",)
    dialect: ClassVar[Any] = "postgres"

    def stream(self, conn: Any, statement: str, params: dict[str, Any], batch: int) -> Any:
        from kray.plugins.jdbc.sqltext import first_keyword

        if first_keyword(statement, "postgres") in _ROW_QUERIES:
            cursor = conn.cursor(name=cursor_name())
            cursor.itersize = batch
        else:  # INSERT ... RETURNING, SHOW...: no server-side cursor for these
            cursor = conn.cursor()
        try:
            cursor.execute(statement, self._args(statement, params))
        except BaseException:
            cursor.close()
            raise
        return cursor

    def set_time_zone(self, conn: Any, zone: str) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config('TimeZone', %s, false)", (zone,))

    def arrow_types(self, cursor: Any) -> list[Any]:
        import pyarrow as pa

        simple = {16: pa.bool_(), 21: pa.int16(), 23: pa.int32(), 20: pa.int64(),
                  26: pa.int64(), 700: pa.float32(), 701: pa.float64(), 25: pa.string(),
                  1043: pa.string(), 1042: pa.string(), 19: pa.string(), 18: pa.string(),
                  1082: pa.date32(), 1114: pa.timestamp("us"),
                  1184: pa.timestamp("us", tz="UTC"), 1083: pa.time64("us"),
                  17: pa.binary()}
        types = []
        for col in cursor.description:
            if col.type_code == 1700:  # numeric: exact when its precision is declared
                p, s = col.precision, col.scale
                types.append(pa.decimal128(p, s or 0) if p and p <= 38 else None)
            else:
                types.append(simple.get(col.type_code))  # json, uuid, interval...: as text
        return types


class CopyIn(PostgresConnection):
    """Bulk-load a file from internal storage into a table with ``COPY ... FROM STDIN``:
    output ``rowCount``.

    ``from``: a ``kray://`` URI. ``format``: CSV (default), TEXT or BINARY stream the file's
    bytes to PostgreSQL, which parses them (``header``, ``delimiter``, ``quote``, ``escape``,
    ``nullString``, ``encoding`` are COPY's options); PARQUET or JSONL (kray) are decoded by
    DuckDB and sent row by row, their columns matched to ``columns`` (or the table's) by
    position. ``table`` may be schema-qualified (``sales.orders``).
    """

    type_name: ClassVar[str] = "kray.jdbc.postgresql.CopyIn"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.jdbc.postgresql.CopyIn",)

    from_: str = Field(alias="from")
    table: str
    columns: list[str] | None = None
    format: str = "CSV"
    header: bool = False
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    null_string: str | None = None
    encoding: str | None = None

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        v = v.upper()
        if v not in ("CSV", "TEXT", "BINARY", "PARQUET", "JSONL"):
            raise ValueError("format must be CSV, TEXT, BINARY, PARQUET or JSONL")
        return v

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = check_uri(ctx.render_str(self.from_))
        decoded = self.format in ("PARQUET", "JSONL")
        if not decoded and not ctx.storage.exists(uri):
            raise TaskError(f"file not found: {uri}")
        statement = self._statement(ctx, raw=not decoded)
        with self.connection(ctx) as conn, conn.cursor() as cursor:
            with cursor.copy(statement) as copy:
                if decoded:
                    for rows in read_batches(ctx, uri, FileFormat(self.format)):
                        for row in rows:
                            copy.write_row(row)
                else:
                    with ctx.storage.open(uri, "rb") as f:
                        while chunk := f.read(CHUNK):
                            copy.write(chunk)
            count = cursor.rowcount
        ctx.logger.info(f"copied {count} rows into {self.table}")
        return {"rowCount": count}

    def _statement(self, ctx: RunContext, *, raw: bool) -> Any:
        from psycopg import sql

        table = sql.Identifier(*ctx.render_str(self.table).split("."))
        target: Any = table
        if self.columns:
            names = sql.SQL(", ").join(sql.Identifier(ctx.render_str(c)) for c in self.columns)
            target = sql.SQL("{} ({})").format(table, names)
        if not raw:  # rows written with write_row: COPY's default text format
            return sql.SQL("COPY {} FROM STDIN").format(target)
        options: list[Any] = [sql.SQL("FORMAT {}").format(sql.SQL(self.format.lower()))]
        if self.header and self.format == "CSV":
            options.append(sql.SQL("HEADER true"))
        for name, value in (("DELIMITER", self.delimiter), ("QUOTE", self.quote),
                            ("ESCAPE", self.escape), ("NULL", self.null_string),
                            ("ENCODING", self.encoding)):
            if value is not None:
                options.append(sql.SQL(name + " {}").format(sql.Literal(ctx.render_str(value))))
        return sql.SQL("COPY {} FROM STDIN WITH ({})").format(target, sql.SQL(", ").join(options))


TASKS = [Query, CopyIn]
