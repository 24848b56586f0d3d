"""What SQL tasks do with a query's result: fetch it into outputs, or store it as a file.

Shared by the DuckDB and the JDBC-style tasks:

* ``FetchType``: NONE, FETCH_ONE (output ``row``), FETCH (``rows``, ``size``), STORE (``uri``,
  ``size``: the result written to internal storage, never to outputs).
* ``json_safe``: a value as outputs can carry it (dates as ISO strings, decimals as numbers or
  strings, bytes as base64...).
* ``RowSink``: STORE's writers, Parquet (through pyarrow, with a schema fixed up front from the
  driver's column types) or line-delimited JSON, both streamed batch by batch.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any, Protocol

from pydantic import field_validator

from kray.errors import TaskError
from kray.task import RunnableTask

#: FETCH puts at most this many rows in the outputs; more is an error that suggests STORE.
FETCH_LIMIT = 10_000
#: Rows read from a cursor at a time (a server-side cursor's batch; the ``fetchSize`` default).
BATCH_ROWS = 10_000

_MAX_JSON_INT = 2**63 - 1  # orjson, which carries outputs, stops at 64-bit integers
_FLOAT_DIGITS = 15  # a decimal with at most this many digits survives a trip through float


class FetchType(StrEnum):
    NONE = "NONE"  # run the SQL, output nothing from its result
    FETCH_ONE = "FETCH_ONE"  # the first row as ``row`` (null when there is none)
    FETCH = "FETCH"  # every row as ``rows``, with ``size``; capped at FETCH_LIMIT
    STORE = "STORE"  # every row to a file in internal storage: ``uri`` and ``size``


class StoreFormat(StrEnum):
    PARQUET = "PARQUET"  # typed columns; read back with read_parquet, pandas, pyarrow...
    JSONL = "JSONL"  # one JSON object per line, values as ``json_safe`` makes them

    @property
    def extension(self) -> str:
        return ".parquet" if self is StoreFormat.PARQUET else ".jsonl"


class SqlTask(RunnableTask):
    """Properties every SQL task shares.

    ``fetchType`` says what becomes of the result of the last statement. Kestra's older
    booleans are accepted: ``fetchOne``, ``fetch`` and ``store`` (they win over ``fetchType``).
    ``storeFormat`` (kray) picks STORE's file format: PARQUET (default) or JSONL.
    """

    sql: str
    fetch_type: FetchType = FetchType.NONE
    store_format: StoreFormat = StoreFormat.PARQUET
    parameters: dict[str, Any] | None = None
    fetch_one: bool | None = None
    fetch: bool | None = None
    store: bool | None = None

    @field_validator("fetch_type", "store_format", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    def effective_fetch_type(self) -> FetchType:
        if self.store:
            return FetchType.STORE
        if self.fetch:
            return FetchType.FETCH
        if self.fetch_one:
            return FetchType.FETCH_ONE
        return self.fetch_type

    def rendered_parameters(self, ctx: Any) -> dict[str, Any]:
        return dict(ctx.render(self.parameters)) if self.parameters else {}


def too_many_rows(limit: int = FETCH_LIMIT) -> TaskError:
    return TaskError(f"fetchType FETCH returned more than {limit} rows, the most that task "
                     "outputs may hold; use fetchType: STORE to write the result to internal "
                     "storage (or add a LIMIT)")


def json_safe(value: Any) -> Any:
    """``value`` made of JSON types only.

    Dates, times and timestamps become ISO-8601 strings; decimals become floats when at most
    15 significant digits (exact in a float), strings otherwise; bytes become base64; UUIDs
    strings; durations ISO-8601 durations (``PT1H30M``); NaN and infinities null (as in the
    repository); integers beyond 64 bits strings. Lists, tuples and maps are converted
    throughout, map keys made strings.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_MAX_JSON_INT - 1 <= value <= _MAX_JSON_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        digits = len(value.as_tuple().digits)
        return float(value) if digits <= _FLOAT_DIGITS else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return str(value)


def iso_duration(delta: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` -> ``"PT1H30M"`` (negative: ``"-PT..."``)."""
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    days = delta.days
    seconds = delta.seconds + delta.microseconds / 1e6
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{sign}P{days}D" if days else f"{sign}P"
    clock = "".join([f"{int(hours)}H" if hours else "", f"{int(minutes)}M" if minutes else "",
                     f"{secs:g}S" if secs else ""])
    if clock or not days:
        out += "T" + (clock or "0S")
    return out


def row_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return {name: json_safe(v) for name, v in zip(columns, row)}


# -- STORE ----------------------------------------------------------------------------------

class RowSink(Protocol):
    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...
    def close(self) -> int: ...


class JsonlSink:
    """One JSON object per line (``json_safe`` values), written to a binary file object."""

    def __init__(self, file: IO[bytes], columns: Sequence[str]) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._file = file
        self._columns = list(columns)
        self.count = 0

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        lines = [self._dumps(row_dict(self._columns, row)) for row in rows]
        if lines:
            self._file.write(b"\n".join(lines) + b"\n")
        self.count += len(lines)

    def close(self) -> int:
        return self.count


class ParquetSink:
    """Parquet with a schema fixed before the first row, so that a column that is null in the
    first batch keeps its type. ``types`` holds pyarrow types; a ``None`` type means "no
    faithful Arrow type": the column is stored as strings (JSON for lists and maps)."""

    def __init__(self, file: IO[bytes], columns: Sequence[str], types: Sequence[Any]) -> None:
        pa, pq = require_pyarrow()
        self._pa = pa
        self._as_text = [t is None for t in types]
        fields = [pa.field(name, pa.string() if t is None else t)
                  for name, t in zip(columns, types)]
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(file, self._schema, compression="snappy")
        self.count = 0

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        pa = self._pa
        arrays = []
        for i, (fld, values) in enumerate(zip(self._schema, zip(*rows))):
            if self._as_text[i]:
                values = tuple(_text(v) for v in values)
            try:
                arrays.append(pa.array(values, type=fld.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise TaskError(f"column '{fld.name}' cannot be stored as {fld.type}: {e}; "
                                "use storeFormat: JSONL") from None
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self.count += len(rows)

    def close(self) -> int:
        self._writer.close()
        return self.count


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    safe = json_safe(value)
    if isinstance(safe, (dict, list)):
        import orjson
        return orjson.dumps(safe).decode()
    return None if safe is None else str(safe)


def require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskError("storeFormat PARQUET needs pyarrow (pip install 'kray[sql]'); or use "
                        "storeFormat: JSONL") from None
    return pa, pq
