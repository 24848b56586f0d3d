"""Rows of a file in internal storage, for bulk loads: CSV, Parquet or JSONL, decoded by DuckDB
(its CSV reader handles quoting, headers and NULLs; Parquet keeps its types) and handed over
batch by batch, so a file larger than memory loads fine."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kray.errors import TaskError

if TYPE_CHECKING:
    from kray.context import RunContext


class FileFormat(StrEnum):
    CSV = "CSV"
    PARQUET = "PARQUET"
    JSONL = "JSONL"

    @classmethod
    def of(cls, uri: str, given: str | None) -> FileFormat:
        """The format named by ``given``, else guessed from the file's extension (CSV when
        unknown)."""
        if given:
            try:
                return cls(given.upper())
            except ValueError:
                raise TaskError(f"format must be one of {', '.join(cls)}, not '{given}'") \
                    from None
        name = uri.lower()
        if name.endswith((".parquet", ".pq")):
            return cls.PARQUET
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return cls.JSONL
        return cls.CSV


def check_uri(uri: str, what: str = "from") -> str:
    if not uri.startswith("kray://"):
        raise TaskError(f"{what} must be a kray:// storage URI, got '{uri}'")
    return uri


def read_batches(ctx: RunContext, uri: str, fmt: FileFormat, *, header: bool = True,
                 delimiter: str = ",", batch: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of rows of the file at ``uri``. CSV values are read as text (the database casts
    them to its column types, as its own CSV loader would); an empty unquoted field is NULL."""
    import duckdb
    from kray.plugins.duckdb.filesystem import KrayFileSystem
    from kray.storage.internal import InternalStorage

    storage = ctx.storage
    if not storage.exists(uri):
        raise TaskError(f"file not found: {uri}")
    location = storage.local_path(uri) or uri
    con = duckdb.connect()
    try:
        if location == uri and isinstance(storage, InternalStorage):
            con.register_filesystem(KrayFileSystem(storage))
        args: dict[str, Any] = {"path": location}
        if fmt is FileFormat.PARQUET:
            query = "SELECT * FROM read_parquet($path)"
        elif fmt is FileFormat.JSONL:
            query = "SELECT * FROM read_json($path, format = 'newline_delimited')"
        else:
            query = ("SELECT * FROM read_csv($path, header = $header, delim = $delim, "
                     "all_varchar = true, quote = '\"', escape = '\"')")
            args.update(header=header, delim=delimiter)
        try:
            cursor = con.execute(query, args)
            while rows := cursor.fetchmany(batch):
                yield rows
        except duckdb.Error as e:
            raise TaskError(f"cannot read {uri} as {fmt}: {e}") from None
    finally:
        con.close()
