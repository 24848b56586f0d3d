"""``kray.jdbc.postgresql.Trigger``: run a query every ``interval``; start one execution when
it returns rows.

``url`` takes what the PostgreSQL tasks take (``jdbc:postgresql://host:5432/db``, a libpq URL
or keyword string), with ``username`` and ``password`` (``{{ secret('PG_PASSWORD') }}``
works: properties are rendered in the trigger actor at each poll). ``fetchType``:

* ``FETCH`` (kray's default): every row in ``trigger.rows`` (JSON values as the SQL tasks
  give them: dates ISO-8601, decimals numbers or strings...), with ``trigger.size``; at most
  10,000 rows, more is an error that suggests ``STORE`` or a ``LIMIT``;
* ``FETCH_ONE``: the first row in ``trigger.row``, ``trigger.size`` = every row counted;
* ``STORE``: the rows written as JSON lines to internal storage, ``trigger.uri`` (needs the
  executor's storage, which the trigger actor hands over), ``trigger.size``;
* ``NONE``: only ``trigger.size``.

A poll that returns no row starts nothing. The message id is the poll's slot (see
``polling``). The query runs in its own transaction, rolled back after reading: a trigger
watches, it does not write (mark rows as processed in the flow).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kray.triggers.models import PollingTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, SourceError
from kray.triggers.sources.polling import (PollingSource, Renderer, iso_us, poll_id,
                                           trigger_folder, trigger_storage)

FETCH_LIMIT = 10_000  # rows in trigger.rows, as the SQL tasks' outputs
_URL_PREFIXES = ("jdbc:postgresql:", "postgresql://", "postgres://")


class TriggerFetchType(StrEnum):
    NONE = "NONE"  # only trigger.size
    FETCH_ONE = "FETCH_ONE"  # the first row as trigger.row
    FETCH = "FETCH"  # every row as trigger.rows
    STORE = "STORE"  # every row to a JSON-lines file in internal storage: trigger.uri


class PostgresTrigger(PollingTrigger):
    """Poll PostgreSQL with ``sql``; one execution per poll that returns rows."""

    kind: ClassVar[str] = "PostgresQuery"

    url: str
    username: str | None = None
    password: str | None = None
    sql: str = Field(min_length=1)
    fetch_type: TriggerFetchType = TriggerFetchType.FETCH
    # Kestra's older booleans (they win over fetchType, as in the SQL tasks).
    fetch: bool | None = None
    fetch_one: bool | None = None
    store: bool | None = None
    fetch_size: int | None = Field(None, ge=1)  # accepted for Kestra compatibility
    time_zone_id: str | None = None

    @field_validator("fetch_type", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        text = v.strip()
        if "{{" not in text and not text.startswith(_URL_PREFIXES) and "=" not in text:
            raise ValueError("url must look like jdbc:postgresql://host:5432/db, "
                             "postgresql://host:5432/db or 'host=... dbname=...'")
        return text

    def effective_fetch_type(self) -> TriggerFetchType:
        if self.store:
            return TriggerFetchType.STORE
        if self.fetch:
            return TriggerFetchType.FETCH
        if self.fetch_one:
            return TriggerFetchType.FETCH_ONE
        return self.fetch_type


register_source(PostgresTrigger, "kray.plugins.triggers.sql:PostgresSource",
                "kray.jdbc.postgresql.Trigger", "io.kestra.plugin.jdbc.postgresql.Trigger")


# -- the source (runs in the trigger actor; psycopg imported here only) ----------------------

class PostgresSource(PollingSource):
    """One query per poll on a connection kept open between polls (reopened by the actor
    after an error)."""

    trigger: PostgresTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.renderer = Renderer(self.context)
        self._conn: Any = None
        self._display = "PostgreSQL"

    async def open(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise SourceError("the PostgreSQL trigger needs psycopg: pip install "
                              "'kray[sql]'") from None
        kwargs = self._connect_args()
        try:
            self._conn = await psycopg.AsyncConnection.connect(**kwargs)
        except psycopg.Error as e:
            raise SourceError(f"cannot connect to {self._display}: "
                              f"{self.renderer.mask(str(e).strip())}") from None

    def _connect_args(self) -> dict[str, Any]:
        """psycopg's keyword arguments, from the URL as the PostgreSQL tasks read it."""
        from kray.plugins.jdbc.postgresql import Query

        from kray.errors import KrayError

        t, r = self.trigger, self.renderer
        url = str(t.url).strip()
        username = t.username
        password = t.password
        r.hide(password)
        try:
            target = Query.model_construct().parse_url(url, username, password)
        except KrayError as e:
            raise SourceError(f"url: {r.mask(str(e))}") from None
        r.hide(*target.secrets)
        self._display = target.display
        return {**target.kwargs, "autocommit": False}

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - closing never raises
                pass

    async def poll(self, slot_us: int, max_messages: int) -> list[Message]:
        import psycopg

        if self._conn is None:
            await self.open()
        fetch_type = self.trigger.effective_fetch_type()
        sql = str(self.trigger.sql)
        try:
            columns, rows, size = await self._query(sql, fetch_type)
        except psycopg.Error as e:
            await self.close()
            raise SourceError(f"{self._display}: {self.renderer.mask(str(e).strip())}") \
                from None
        if size == 0:
            return []
        variables = await self._variables(fetch_type, columns, rows, size, slot_us)
        return [Message(poll_id(slot_us), variables, slot_us)]

    async def _query(self, sql: str, fetch_type: TriggerFetchType) -> tuple[
            list[str], list[Any], int]:
        """(column names, the rows kept, how many rows there were); rolled back after."""
        conn = self._conn
        try:
            async with conn.cursor() as cursor:
                if self.trigger.time_zone_id:
                    await cursor.execute("SELECT set_config('TimeZone', %s, true)",
                                         (self.trigger.time_zone_id,))
                await cursor.execute(sql)
                if cursor.description is None:
                    raise SourceError("sql: the query returns no rows (a trigger's query "
                                      "must be a SELECT, WITH, VALUES or TABLE)")
                columns = [c.name for c in cursor.description]
                if fetch_type is TriggerFetchType.FETCH:
                    rows = await cursor.fetchmany(FETCH_LIMIT + 1)
                    if len(rows) > FETCH_LIMIT:
                        raise SourceError(
                            f"sql returned more than {FETCH_LIMIT} rows, the most "
                            "trigger.rows may hold; use fetchType: STORE or add a LIMIT")
                    return columns, rows, len(rows)
                rows = await cursor.fetchall()
                return columns, rows, len(rows)
        finally:
            await conn.rollback()

    async def _variables(self, fetch_type: TriggerFetchType, columns: list[str],
                         rows: list[Any], size: int, slot_us: int) -> dict[str, Any]:
        from kray.plugins.jdbc.results import row_dict

        out: dict[str, Any] = {"size": size, "date": iso_us(slot_us)}
        if fetch_type is TriggerFetchType.FETCH:
            out["rows"] = [row_dict(columns, row) for row in rows]
        elif fetch_type is TriggerFetchType.FETCH_ONE:
            out["row"] = row_dict(columns, rows[0]) if rows else None
        elif fetch_type is TriggerFetchType.STORE:
            out["uri"] = await self._store(columns, rows, slot_us)
        return out

    async def _store(self, columns: list[str], rows: list[Any], slot_us: int) -> str:
        """The rows as JSON lines in internal storage, under the trigger's folder."""
        import asyncio

        import orjson
        from kray.plugins.jdbc.results import row_dict

        storage = trigger_storage(self.context)
        if storage is None:
            raise SourceError("fetchType STORE needs the executor's internal storage, which "
                              "this trigger runtime did not provide; use FETCH")
        name = f"{iso_us(slot_us).replace(':', '-').replace('+', '_')}.jsonl"
        path = f"{trigger_folder(self.context)}/{name}"
        data = b"".join(orjson.dumps(row_dict(columns, row)) + b"\n" for row in rows)
        return str(await asyncio.to_thread(storage.put, path, data))


__all__ = ["PostgresSource", "PostgresTrigger"]
