"""MySQL and MariaDB: ``kray.jdbc.mysql.Query`` and ``kray.jdbc.mysql.Load``, on PyMySQL.

``url`` is Kestra's ``jdbc:mysql://host:3306/db`` (or ``jdbc:mariadb://``), or the same without
``jdbc:``; ``user`` and ``password`` may ride in the URL's user part or its query string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field

from kray.errors import TaskError
from kray.plugins.jdbc.query import Connected, JdbcQuery, Target
from kray.plugins.jdbc.sources import FileFormat, check_uri, read_batches

if TYPE_CHECKING:
    from kray.context import RunContext

_SCHEMES = ("mysql://", "mariadb://")
_BINARY_CHARSET = 63
_UNSIGNED_FLAG = 32


class MySqlConnection(Connected):
    """Connects to MySQL or MariaDB (``url``, ``username``, ``password``)."""

    label: ClassVar[str] = "MySQL"

    def parse_url(self, url: str, username: str | None, password: str | None) -> Target:
        if url.startswith("jdbc:"):
            url = url[len("jdbc:"):]
        if not url.startswith(_SCHEMES):
            raise TaskError("url must look like jdbc:mysql://host:3306/db or "
                            "mysql://user@host:3306/db")
        try:
            parts = urlsplit(url)
            port = parts.port or 3306
        except ValueError as e:
            raise TaskError(f"url is not a valid MySQL URL: {e}") from None
        kwargs: dict[str, Any] = {"host": unquote(parts.hostname or "localhost"), "port": port}
        if parts.path.strip("/"):
            kwargs["database"] = unquote(parts.path.strip("/"))
        if parts.username:
            kwargs["user"] = unquote(parts.username)
        if parts.password is not None:
            kwargs["password"] = unquote(parts.password)
        dropped = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("user", "password"):
                kwargs[key] = value
            elif key == "connectTimeout":  # JDBC: milliseconds
                kwargs["connect_timeout"] = max(1, int(value) // 1000) if value.isdigit() else 10
            else:
                dropped.append(key)
        if username:
            kwargs["user"] = username
        if password is not None:
            kwargs["password"] = password
        kwargs.setdefault("connect_timeout", 10)
        display = f"mysql://{kwargs['host']}:{port}/{kwargs.get('database', '')}"
        if kwargs.get("user"):
            display += f" as {kwargs['user']}"
        secrets = [kwargs["password"]] if kwargs.get("password") else []
        return Target(kwargs, display, secrets, dropped)

    def open(self, target: Target) -> Any:
        import pymysql

        return pymysql.connect(autocommit=False, charset="utf8mb4", **target.kwargs)

    def driver_errors(self) -> tuple[type[BaseException], ...]:
        import pymysql

        return (pymysql.Error,)

    def describe(self, error: BaseException) -> str:
        args = error.args
        if len(args) == 2 and isinstance(args[0], int):  # (1048, "Column 'id' cannot be null")
            return f"{args[1]} (error {args[0]})"
        return super().describe(error)


class Query(MySqlConnection, JdbcQuery):
    """Run SQL on MySQL or MariaDB; see ``JdbcQuery`` for ``fetchType``, ``storeFormat``,
    ``parameters`` (``%(name)s``) and ``fetchSize``. The last statement's rows are streamed
    from the server (an unbuffered cursor), never held whole in memory."""

    type_name: ClassVar[str] = "kray.jdbc.mysql.Query"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.jdbc.mysql.Query",
                                          "io.kestra.plugin.jdbc.mariadb.Query")
    dialect: ClassVar[Any] = "mysql"

    def stream(self, conn: Any, statement: str, params: dict[str, Any], batch: int) -> Any:
        import pymysql.cursors

        cursor = conn.cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(statement, self._args(statement, params))
        except BaseException:
            cursor.close()
            raise
        return cursor

    def set_time_zone(self, conn: Any, zone: str) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SET time_zone = %s", (zone,))

    def arrow_types(self, cursor: Any) -> list[Any]:
        import pyarrow as pa
        from pymysql.constants import FIELD_TYPE as T

        integers = {T.TINY, T.SHORT, T.INT24, T.LONG, T.YEAR}
        texts = {T.VARCHAR, T.VAR_STRING, T.STRING, T.ENUM, T.SET, T.TINY_BLOB,
                 T.MEDIUM_BLOB, T.LONG_BLOB, T.BLOB}
        # The description lacks charset and flags; the result's field packets have them.
        fields = getattr(getattr(cursor, "_result", None), "fields", None) or []
        types: list[Any] = []
        for i, col in enumerate(cursor.description):
            code, length, scale = col[1], col[3] or 0, col[5] or 0
            field = fields[i] if i < len(fields) else None
            binary = field is not None and field.charsetnr == _BINARY_CHARSET
            unsigned = field is not None and bool(field.flags & _UNSIGNED_FLAG)
            if code in integers:
                types.append(pa.int64())
            elif code == T.LONGLONG:
                types.append(pa.uint64() if unsigned else pa.int64())
            elif code in (T.DECIMAL, T.NEWDECIMAL):
                # ``length`` counts the point (when there are decimals) and a sign.
                precision = length - (1 if scale else 0) - (0 if unsigned else 1)
                types.append(pa.decimal128(precision, scale) if 0 < precision <= 38 else None)
            elif code == T.FLOAT or code == T.DOUBLE:
                types.append(pa.float64())
            elif code in (T.DATETIME, T.TIMESTAMP):
                types.append(pa.timestamp("us"))
            elif code in (T.DATE, T.NEWDATE):
                types.append(pa.date32())
            elif code in texts:
                types.append(pa.binary() if binary else pa.string())
            elif code in (T.BIT, T.GEOMETRY):
                types.append(pa.binary())
            else:  # TIME (a duration in pymysql), JSON, NULL...: as text
                types.append(None)
        return types


class Load(MySqlConnection):
    """Bulk-load a file from internal storage into a table with batched multi-row INSERTs:
    output ``rowCount``.

    ``from``: a ``kray://`` URI of CSV, Parquet or JSONL (``format``, else guessed from the
    extension). CSV values go in as text for MySQL to cast; an empty unquoted field is NULL;
    ``header`` (default true) and ``delimiter`` describe the file. The file's columns are
    matched to ``columns`` (or the table's) by position. ``chunk``: rows per INSERT. One
    transaction: a failure loads nothing.
    """

    type_name: ClassVar[str] = "kray.jdbc.mysql.Load"
    aliases: ClassVar[tuple[str, ...]] = ("kray.jdbc.mariadb.Load",)

    from_: str = Field(alias="from")
    table: str
    columns: list[str] | None = None
    format: str | None = None
    header: bool = True
    delimiter: str = ","
    chunk: int = Field(1000, ge=1)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = check_uri(ctx.render_str(self.from_))
        fmt = FileFormat.of(uri, ctx.render_str(self.format) if self.format else None)
        table = ".".join(_quote_name(p) for p in ctx.render_str(self.table).split("."))
        names = ([_quote_name(ctx.render_str(c)) for c in self.columns]
                 if self.columns else None)
        count = 0
        with self.connection(ctx) as conn, conn.cursor() as cursor:
            insert = None
            for rows in read_batches(ctx, uri, fmt, header=self.header,
                                     delimiter=ctx.render_str(self.delimiter),
                                     batch=self.chunk):
                if insert is None:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    target = f"{table} ({', '.join(names)})" if names else table
                    insert = f"INSERT INTO {target} VALUES ({marks})"
                cursor.executemany(insert, rows)
                count += len(rows)
        ctx.logger.info(f"loaded {count} rows into {self.table}")
        return {"rowCount": count}


def _quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


TASKS = [Query, Load]
