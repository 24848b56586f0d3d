"""Internal storage: task files and namespace files on fsspec, addressed by ``kray://`` URIs.

A ``kray:///a/b/c.csv`` URI names a file relative to the storage root; the root is a base URL
chosen by configuration: a local folder (the default), ``memory://``, ``s3://bucket/prefix``
(s3fs) or ``gs://bucket/prefix`` (gcsfs). Every path is validated before it touches a
filesystem, so no URI can reach outside the root (see ``validate_path``).

An ``InternalStorage`` is shipped to Ray workers: it pickles as its base URL and options only,
and each process builds its own fsspec filesystem on first use.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote

import fsspec
from fsspec.core import split_protocol

from kray.errors import StoragePathError

KRAY_SCHEME = "kray://"

_MAX_PATH = 1024  # S3's key limit, in bytes
_MAX_SEGMENT = 255  # NAME_MAX on common local filesystems, in bytes
_TMP_PREFIX = ".kray-tmp-"  # in-progress atomic writes; never listed
# Control characters (C0, DEL, C1) can hide a path's real shape in logs and terminals.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# fsspec's rm/expand_path and DuckDB's readers expand these as globs: one "file" could name many.
_GLOB = re.compile(r"[*?\[\]]")
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def validate_path(path: str, *, allow_root: bool = False) -> str:
    """Check a storage path relative to the root and return it unchanged.

    Rejected, each with its own message: ``..`` and ``.`` segments, absolute paths, empty
    segments (``a//b``, a trailing ``/``), backslashes, NUL and other control characters, glob
    characters, and over-long paths. The percent-decoded form is checked too, so ``..%2f``
    fails like ``../`` in case a tool downstream decodes it. ``allow_root`` accepts ``""``.
    """
    if not isinstance(path, str):
        raise StoragePathError(f"storage path must be a string, not {type(path).__name__}")
    _check(path, path, allow_root)
    decoded = unquote(path)
    if decoded != path:
        _check(decoded, path, allow_root)
    return path


def _check(path: str, original: str, allow_root: bool) -> None:
    def fail(why: str) -> StoragePathError:
        return StoragePathError(f"invalid storage path {original!r}: {why}")

    if path == "":
        if allow_root:
            return
        raise fail("it is empty")
    if _CONTROL.search(path):
        raise fail("control characters (NUL, newline, ...) are not allowed")
    if "\\" in path:
        raise fail("backslashes are not allowed; use '/'")
    if path.startswith("/"):
        raise fail("absolute paths are not allowed; paths are relative to the storage root")
    if _GLOB.search(path):
        raise fail("glob characters (* ? [ ]) are not allowed")
    if len(path.encode()) > _MAX_PATH:
        raise fail(f"longer than {_MAX_PATH} bytes")
    for segment in path.split("/"):
        if segment == "":
            raise fail("empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise fail(f"'{segment}' segments are not allowed")
        if len(segment.encode()) > _MAX_SEGMENT:
            raise fail(f"a segment is longer than {_MAX_SEGMENT} bytes")


class InternalStorage:
    """Task files and namespace files on fsspec, addressed by kray:///<path> URIs mapped under
    a base URL.

    ``base_url`` is ``/abs/path``, ``file:///abs/path``, ``memory://name``,
    ``s3://bucket/prefix`` or ``gs://bucket/prefix``; ``storage_options`` go to the fsspec
    filesystem (e.g. ``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}`` for s3fs).
    A relative local path is made absolute once, here, so workers agree on it.
    """

    def __init__(self, base_url: str, **storage_options: Any):
        protocol, path = split_protocol(str(base_url))
        protocol = protocol or "file"
        if protocol in _LOCAL_PROTOCOLS:
            protocol, path = "file", os.path.abspath(path)
        try:
            fs_class = fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as e:
            raise StoragePathError(f"storage base URL {base_url!r}: {e}") from e
        root = str(fs_class._strip_protocol(path if protocol == "file" else str(base_url)))
        root = root.rstrip("/")
        if not root.strip("/"):
            raise StoragePathError(
                f"storage base URL {base_url!r} names no folder (or bucket) to use as the root")
        self.base_url = str(base_url)
        self.storage_options = dict(storage_options)
        self._protocol = protocol
        self._root = root
        self._fs: fsspec.AbstractFileSystem | None = None

    # -- pickling: only the configuration travels --------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base_url"], **state["storage_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"InternalStorage({self.base_url!r})"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem, built in this process on first use."""
        if self._fs is None:
            self._fs = fsspec.filesystem(self._protocol, **self.storage_options)
        return self._fs

    @property
    def is_local(self) -> bool:
        return self._protocol == "file"

    # -- addressing ----------------------------------------------------------------------
    @staticmethod
    def uri(path: str) -> str:
        """The ``kray:///`` URI of a relative storage path."""
        return KRAY_SCHEME + "/" + validate_path(path)

    @staticmethod
    def path_of(uri_or_path: str) -> str:
        """The validated relative path named by a ``kray://`` URI or a relative path.

        ``kray:///a/b`` and ``kray://a/b`` both give ``a/b``; ``kray:////etc/passwd`` is an
        absolute path after the scheme and is rejected.
        """
        return _relative(uri_or_path, allow_root=False)

    def url(self, uri_or_path: str) -> str:
        """The backend URL of a file, for DuckDB and other tools: an absolute local path, or
        ``s3://bucket/prefix/a/b.csv`` and the like."""
        full = self._full(self.path_of(uri_or_path))
        return full if self.is_local else f"{self._protocol}://{full.lstrip('/')}"

    def local_path(self, uri_or_path: str) -> str | None:
        """The absolute local path of a file when the backend is the local filesystem."""
        return self._full(self.path_of(uri_or_path)) if self.is_local else None

    def _full(self, rel: str) -> str:
        return f"{self._root}/{rel}" if rel else self._root

    # -- writing -------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> str:
        """Write ``data`` at ``path`` (creating parent folders) and return its URI."""
        rel = self.path_of(path)
        full = self._full(rel)
        if self.is_local:
            with _AtomicLocalFile(full) as f:
                f.write(data)
        else:
            self.fs.pipe_file(full, bytes(data))
        return self.uri(rel)

    def put_file(self, path: str, local: Path | str) -> str:
        """Copy a local file to ``path`` and return its URI."""
        rel = self.path_of(path)
        full = self._full(rel)
        if self.is_local:
            with open(local, "rb") as src, _AtomicLocalFile(full) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        else:
            self.fs.put_file(str(local), full)
        return self.uri(rel)

    def open(self, uri_or_path: str, mode: str = "rb") -> IO[Any]:
        """A file object. Reading modes ``rb``/``r``; writing modes ``wb``/``w`` create parent
        folders and replace the file when it is closed: atomically on the local backend,
        where an exception inside the ``with`` block leaves the old file in place."""
        if mode not in ("rb", "r", "wb", "w"):
            raise ValueError(f"unsupported mode {mode!r}: use 'rb', 'r', 'wb' or 'w'")
        full = self._full(self.path_of(uri_or_path))
        if self.is_local and mode == "wb":
            return _AtomicLocalFile(full)
        if self.is_local and mode == "w":
            return _AtomicTextFile(_AtomicLocalFile(full), encoding="utf-8")
        return self.fs.open(full, mode)  # type: ignore[no-any-return]

    # -- reading -------------------------------------------------------------------------
    def read(self, uri_or_path: str) -> bytes:
        """The whole file; ``FileNotFoundError`` when absent."""
        return bytes(self.fs.cat_file(self._full(self.path_of(uri_or_path))))

    def exists(self, uri_or_path: str) -> bool:
        return bool(self.fs.exists(self._full(self.path_of(uri_or_path))))

    def size(self, uri_or_path: str) -> int:
        """Size in bytes; ``FileNotFoundError`` when absent."""
        return int(self.fs.size(self._full(self.path_of(uri_or_path))))

    def delete(self, uri_or_path: str) -> bool:
        """Delete one file; ``False`` when there was none. Never recursive, never a glob."""
        full = self._full(self.path_of(uri_or_path))
        if not self.fs.isfile(full):
            return False
        try:
            self.fs.rm_file(full)
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        """URIs of the files under the folder ``prefix`` (``""``: everything), recursively,
        sorted."""
        if isinstance(prefix, str):
            prefix = prefix.removesuffix("/")
        rel = _relative(prefix, allow_root=True)
        folder = self._full(rel)
        if not self.fs.isdir(folder):
            return []
        start = len(self._root.lstrip("/")) + 1
        out = []
        for found in self.fs.find(folder):
            relative = str(found).lstrip("/")[start:]
            if relative.rsplit("/", 1)[-1].startswith(_TMP_PREFIX):
                continue
            out.append(KRAY_SCHEME + "/" + relative)
        return sorted(out)


def _relative(uri_or_path: str, *, allow_root: bool) -> str:
    if not isinstance(uri_or_path, str):
        raise StoragePathError(
            f"storage path must be a string, not {type(uri_or_path).__name__}")
    if uri_or_path.startswith(KRAY_SCHEME):
        rest = uri_or_path[len(KRAY_SCHEME):]
        rest = rest.removeprefix("/")  # kray:///a/b: empty authority
        if not rest and not allow_root:
            raise StoragePathError(f"invalid storage URI {uri_or_path!r}: it names no file")
        return validate_path(rest, allow_root=allow_root)
    if "://" in uri_or_path:
        raise StoragePathError(
            f"invalid storage path {uri_or_path!r}: only kray:// URIs or relative paths")
    return validate_path(uri_or_path, allow_root=allow_root)


class _AtomicLocalFile(io.BufferedWriter):
    """A local file written under a temporary name in the same folder and renamed over the
    target on close, so a reader sees the old file or the whole new one, never half of one.
    Closing after an exception in a ``with`` block discards the temporary file."""

    def __init__(self, target: str):
        self._target = target
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        self._tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        self._file = io.FileIO(self._tmp, "xb")
        super().__init__(self._file, buffer_size=1024 * 1024)
        self._discard = False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._discard = exc_type is not None
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        commit = not self._discard
        try:
            if commit:
                self.flush()
                os.fsync(self._file.fileno())
        except BaseException:
            commit = False  # a failed flush (disk full, ...) must not install a torn file
            raise
        finally:
            self._file.close()  # unflushed bytes of a discarded file are dropped, not written
            if commit:
                try:
                    os.replace(self._tmp, self._target)
                except BaseException:
                    _unlink_quietly(self._tmp)
                    raise
            else:
                _unlink_quietly(self._tmp)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _AtomicTextFile(io.TextIOWrapper):
    """Text mode over ``_AtomicLocalFile`` that keeps its discard-on-exception rule."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.buffer._discard = True  # type: ignore[attr-defined]
        self.close()


__all__ = ["KRAY_SCHEME", "InternalStorage", "validate_path"]
