"""Internal storage seen from DuckDB's SQL: ``read_parquet('kray:///a/b.parquet')`` and
``COPY ... TO 'kray:///a/c.parquet'`` work on every storage backend.

Two ways in, both always on:

* ``KrayFileSystem``, an fsspec filesystem for the ``kray`` protocol registered on the
  connection (``con.register_filesystem``). It maps ``kray:///a/b`` onto the storage backend
  (local folder, memory, S3...) with the storage's own path checks, so no URI escapes the root.
  DuckDB then reads through Python.
* On the local backend, ``rewrite_storage_literals`` also replaces each ``'kray:///...'`` string
  literal that stands where a file goes (after FROM, JOIN, TO, ATTACH, or inside a
  ``read_*(...)``/``glob(...)`` call) by the file's local path, so that DuckDB reads it with its
  own threads and no Python in between (a 10-million-row Parquet GROUP BY ran 10-25% faster
  than through the fsspec route on a 2-CPU machine; the filesystem holds the GIL per read).
  Other literals (``SELECT 'kray:///x' AS uri``) are left alone: data stays data. A literal
  the rewrite misses still works, through the filesystem.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO, Any

from fsspec import AbstractFileSystem

from kray.plugins.jdbc.sqltext import quote_literal, tokenize
from kray.storage.internal import KRAY_SCHEME, InternalStorage, validate_path

_GLOB_CHARS = "*?["
# Table functions whose arguments are file locations (besides every read_* function).
FILE_FUNCTIONS = frozenset({
    "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
    "parquet_kv_metadata", "glob", "sniff_csv", "delta_scan", "iceberg_scan"})
# Keywords after which a string literal names a file.
FILE_KEYWORDS = frozenset({"FROM", "JOIN", "TO", "ATTACH", "DATABASE", "EXISTS"})


def _relative(path: str, *, allow_root: bool = False, allow_glob: bool = False) -> str:
    """The validated storage path named by ``kray:///a/b``, ``kray://a/b`` or ``a/b``."""
    text = KrayFileSystem._strip_protocol(path)
    if allow_root or allow_glob:
        text = text.rstrip("/")
    if allow_glob and any(c in text for c in _GLOB_CHARS):
        # Check the pattern's shape with its wildcards replaced: '..', absolute parts and the
        # like fail as they would in a plain path.
        validate_path("".join("x" if c in "*?[]" else c for c in text))
        return text
    return validate_path(text, allow_root=allow_root)


class KrayFileSystem(AbstractFileSystem):
    """fsspec filesystem over an ``InternalStorage``, for the ``kray`` protocol.

    Paths are storage paths (``a/b.parquet``); ``kray:///`` URIs are accepted everywhere.
    Reads return a handle that keeps one file position per thread, because DuckDB's threads
    share a handle and seek then read in two calls (a shared position garbles the data).
    Writes go through ``InternalStorage.open`` (atomic on the local backend).
    """

    protocol = "kray"
    root_marker = ""
    cachable = False  # one per storage and connection; never shared through fsspec's cache

    def __init__(self, storage: InternalStorage, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.storage = storage
        # The root as the backend spells it ("/data/storage", "s3://bucket/prefix"): the
        # backend URL of any file, less the file's own path.
        self._root_url = storage.url("x")[:-2]
        self._root_name = str(storage.fs._strip_protocol(self._root_url)).rstrip("/")

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        """``kray:///a/b`` and ``kray://a/b`` -> ``a/b``; ``kray:////etc`` -> ``/etc``, which
        validation then rejects, as ``InternalStorage`` does."""
        text = str(path)
        if text.startswith(KRAY_SCHEME):
            text = text[len(KRAY_SCHEME):].removeprefix("/")
        return text

    def unstrip_protocol(self, name: str) -> str:
        return KRAY_SCHEME + "/" + self._strip_protocol(name)

    def _backend(self, path: str, **kw: Any) -> str:
        rel = _relative(path, **kw)
        return f"{self._root_url}/{rel}" if rel else self._root_url

    def _name(self, backend_path: str) -> str:
        stripped = str(self.storage.fs._strip_protocol(backend_path)).rstrip("/")
        if stripped == self._root_name:
            return ""
        if not stripped.startswith(self._root_name + "/"):
            raise FileNotFoundError(backend_path)  # never hand out a path outside the root
        return stripped[len(self._root_name) + 1:]

    def _entry(self, info: dict[str, Any]) -> dict[str, Any]:
        return {**info, "name": self._name(info["name"])}

    # -- metadata ------------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._entry(self.storage.fs.info(self._backend(path, allow_root=True)))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        entries = self.storage.fs.ls(self._backend(path, allow_root=True), detail=True)
        out = [self._entry(e) for e in entries]
        return out if detail else [e["name"] for e in out]

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        pattern = _relative(path, allow_glob=True)
        if not any(c in pattern for c in _GLOB_CHARS):
            return [pattern] if self.exists(pattern) else []
        found = self.storage.fs.glob(self._backend(pattern, allow_glob=True))
        return sorted(self._name(f) for f in found)

    def modified(self, path: str) -> Any:
        return self.storage.fs.modified(self._backend(path))

    def created(self, path: str) -> Any:
        return self.storage.fs.created(self._backend(path))

    # -- changes -------------------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        if self.storage.is_local:
            os.makedirs(self._backend(path), exist_ok=True)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.mkdir(path)

    def rmdir(self, path: str) -> None:
        if self.storage.is_local:
            os.rmdir(self._backend(path))

    def rm_file(self, path: str) -> None:
        self.storage.fs.rm_file(self._backend(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in path if isinstance(path, list) else [path]:
            if recursive:
                self.storage.fs.rm(self._backend(p), recursive=True)
            else:
                self.rm_file(p)

    def mv(self, path1: str, path2: str, recursive: bool = False,
           maxdepth: int | None = None, **kwargs: Any) -> None:
        self.storage.fs.mv(self._backend(path1), self._backend(path2))

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.storage.fs.cp_file(self._backend(path1), self._backend(path2))

    # -- files ---------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> Any:
        rel = _relative(path)
        if "r" in mode:
            local = self.storage.local_path(rel)
            if local is not None:  # no Python file object at all: positioned reads
                return _PositionalFile(os.open(local, os.O_RDONLY), None, os.path.getsize(local))
            inner = self.storage.fs.open(self._backend(rel), "rb")
            return _PositionalFile(None, inner, int(self.storage.fs.size(self._backend(rel))))
        if mode not in ("wb", "w"):
            raise ValueError(f"kray:// files open for reading or writing, not {mode!r}")
        return self.storage.open(rel, "wb")


class _PositionalFile:
    """A read-only file whose position is per thread: ``seek`` then ``read`` from one thread
    is never disturbed by another thread's ``seek``. Local files are read with ``os.pread``
    (no shared offset at all, and the GIL is released while reading); other backends under a
    lock."""

    def __init__(self, fd: int | None, inner: IO[bytes] | None, size: int) -> None:
        self._fd = fd
        self._inner = inner
        self.size = size
        self._lock = threading.Lock()
        self._pos = threading.local()
        self.closed = False

    def seek(self, offset: int, whence: int = 0) -> int:
        base = 0 if whence == 0 else self.tell() if whence == 1 else self.size
        self._pos.value = base + offset
        return self._pos.value

    def tell(self) -> int:
        return int(getattr(self._pos, "value", 0))

    def read(self, n: int = -1) -> bytes:
        pos = self.tell()
        if n is None or n < 0:
            n = max(0, self.size - pos)
        if self._fd is not None:
            data = os.pread(self._fd, n, pos)
        else:
            assert self._inner is not None
            with self._lock:
                self._inner.seek(pos)
                data = self._inner.read(n)
        self._pos.value = pos + len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._fd is not None:
            os.close(self._fd)
        if self._inner is not None:
            self._inner.close()

    def __enter__(self) -> _PositionalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rewrite_storage_literals(sql: str, local_path: Callable[[str], str | None]) -> str:
    """Replace each ``'kray:///...'`` literal standing where a file goes by
    ``local_path(uri)`` (when that gives a path; glob patterns and invalid URIs are kept)."""
    out: list[str] = []
    calls: list[str] = []  # for each open bracket: the function it calls ('' if none)
    previous = ""  # the last significant token, upper-cased
    for tok in tokenize(sql, "duckdb"):
        text = tok.text
        if tok.kind == "string" and text.startswith("'" + KRAY_SCHEME):
            in_file_call = any(_is_file_function(name) for name in calls[-2:])
            if previous in FILE_KEYWORDS or (previous in ("(", "[", ",") and in_file_call):
                text = _local_literal(text, local_path, writing=previous == "TO")
        elif tok.kind == "punct" and text in "([":
            calls.append(previous.lower() if text == "(" and previous.isidentifier() else "")
        elif tok.kind == "punct" and text in ")]" and calls:
            calls.pop()
        out.append(text)
        if tok.kind not in ("space", "comment"):
            previous = text.upper() if tok.kind == "word" else text
    return "".join(out)


def _is_file_function(name: str) -> bool:
    return name.startswith("read_") or name in FILE_FUNCTIONS


def _local_literal(literal: str, local_path: Callable[[str], str | None], *,
                   writing: bool) -> str:
    uri = literal[1:-1].replace("''", "'") if literal.endswith("'") else ""
    if not uri or any(c in uri for c in _GLOB_CHARS):
        return literal
    try:
        path = local_path(uri)
    except Exception:  # noqa: BLE001 - an invalid URI fails later, in the filesystem, clearly
        return literal
    if path is None:
        return literal
    if writing:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return quote_literal(path)
