"""A preview of a stored file for the UI: tables read by DuckDB, text as its first bytes.

DuckDB runs here, in the API process, on an in-memory database of its own (one thread, a
memory cap) over a temporary copy of the file: never the executor's repository. The format
comes from the file's extension, then from its content (Parquet's magic number, UTF-8 text);
a file DuckDB cannot read as the table its name promises is shown as text, with the reason.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

MAX_ROWS = 1000  # the most rows one preview returns
TEXT_BYTES = 64 * 1024  # the most bytes of a text file a preview returns
DUCKDB_MEMORY = "256MB"
PARQUET_MAGIC = b"PAR1"
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
              ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
READERS = {"csv": "read_csv(?, auto_detect = true, sample_size = 20480)",
           "parquet": "read_parquet(?)",
           "json": "read_json(?, format = 'auto')",
           "jsonl": "read_json(?, format = 'newline_delimited')"}


def detect(name: str, data: bytes) -> str:
    """One of csv, parquet, json, jsonl, text, binary."""
    ext = os.path.splitext(name.lower())[1]
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
        return "parquet"
    return "text" if _text(data) is not None else "binary"


def _text(data: bytes) -> str | None:
    """The first ``TEXT_BYTES`` as text, or None when they are not UTF-8 text."""
    head = data[:TEXT_BYTES]
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3 and len(data) > TEXT_BYTES:  # a character cut in two
            return head[:e.start].decode("utf-8")
        return None


def preview(name: str, data: bytes, max_rows: int = 100) -> dict[str, Any]:
    """``{format, columns, rows, truncated, text, size}`` (blocking: run it in a thread)."""
    fmt = detect(name, data)
    out: dict[str, Any] = {"format": fmt, "columns": [], "rows": [], "truncated": False,
                           "text": None, "size": len(data)}
    if fmt in READERS:
        try:
            columns, rows = _table(fmt, data, max_rows)
        except Exception as e:  # any reader error: the file is not the table it claims
            text = _text(data)
            return {**out, "format": "text" if text is not None else "binary", "text": text,
                    "truncated": text is not None and len(data) > TEXT_BYTES,
                    "error": f"cannot read it as {fmt}: {_first_line(e)}"}
        return {**out, "columns": columns, "rows": rows[:max_rows],
                "truncated": len(rows) > max_rows}
    if fmt == "text":
        return {**out, "text": _text(data), "truncated": len(data) > TEXT_BYTES}
    return out


def _table(fmt: str, data: bytes, max_rows: int) -> tuple[list[str], list[list[Any]]]:
    import duckdb

    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json", "jsonl": ".jsonl"}[fmt]
    with tempfile.TemporaryDirectory(prefix="kray-preview-") as folder:
        path = os.path.join(folder, "file" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        con = duckdb.connect(":memory:", config={"threads": 1,
                                                  "memory_limit": DUCKDB_MEMORY})
        try:
            cursor = con.execute(f"SELECT * FROM {READERS[fmt]} LIMIT ?", [path, max_rows + 1])
            columns = [d[0] for d in cursor.description or []]
            rows = [list(r) for r in cursor.fetchall()]
        except duckdb.Error as e:  # without the temporary path, which means nothing to users
            raise ValueError(str(e).replace(f'"{path}"', "the file").replace(path, "the file")
                             ) from None
        finally:
            con.close()
    return columns, rows


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


__all__ = ["preview", "detect", "MAX_ROWS", "TEXT_BYTES"]
