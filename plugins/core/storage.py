"""Internal storage tasks: ``Write``, ``Size``, ``Concat``, ``Split``, ``Delete``.

Files are addressed by ``kray://`` URIs. ``Concat`` and ``Split`` stream: they never hold a
whole file in memory, so they work on files larger than the worker's RAM. New files go under
the task run's own storage folder (``ctx.storage_path``), with names fixed per task run, so a
retried attempt overwrites what an earlier attempt left instead of piling up orphans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from kray.errors import TaskError
from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext

SCHEME = "kray://"
CHUNK = 1 << 20  # read and copy 1 MiB at a time
_EXTENSION = re.compile(r"^\.?[A-Za-z0-9_-][A-Za-z0-9_.-]{0,31}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str) -> int:
    """``"10KB"`` -> 10240. Units are powers of 1024 (KB = KiB), as in Kestra."""
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if m is None:
            raise TaskError(f"'{value}' is not a size (e.g. 512, \"10KB\", \"1MB\")")
        size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size < 1:
        raise TaskError(f"size must be at least one byte, got '{value}'")
    return size


def _extension(ext: str | None) -> str:
    if not ext:
        return ""
    if not _EXTENSION.match(ext):
        raise TaskError(f"invalid file extension '{ext}'")
    return ext if ext.startswith(".") else f".{ext}"


def _check_uri(uri: Any, what: str = "uri") -> str:
    text = "" if uri is None else str(uri).strip()
    if not text.startswith(SCHEME):
        raise TaskError(f"{what} must be a {SCHEME} storage URI, got '{text}'")
    return text


@contextmanager
def _reading(ctx: RunContext, uri: str) -> Iterator[IO[bytes]]:
    try:
        f = ctx.storage.open(uri, "rb")
    except FileNotFoundError:
        raise TaskError(f"file not found: {uri}") from None
    with f:
        yield f


class _Output:
    """A new storage file for this task run, written as a stream (``finish`` gives its URI;
    ``abort`` leaves nothing behind on the local backend)."""

    def __init__(self, ctx: RunContext, name: str) -> None:
        self.path = ctx.storage_path(name)
        self.uri = f"{SCHEME}/{self.path}"
        self.file: IO[bytes] = ctx.storage.open(self.uri, "wb")
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def finish(self) -> str:
        self.file.close()
        return self.uri

    def abort(self) -> None:
        # Closing "with an exception" discards the local backend's temporary file.
        self.file.__exit__(TaskError, TaskError("aborted"), None)


def _rows(f: IO[bytes], separator: bytes) -> Iterator[bytes]:
    """Each row of ``f``, with its separator still attached (the last row may lack one), so
    that concatenating the rows gives back the file byte for byte."""
    buf = bytearray()
    scan = 0  # where the next separator can start: bytes before it were searched already
    while chunk := f.read(CHUNK):
        buf += chunk
        start = 0
        while (end := buf.find(separator, max(start, scan))) >= 0:
            end += len(separator)
            yield bytes(buf[start:end])
            start = end
        del buf[:start]
        scan = max(0, len(buf) - len(separator) + 1)
    if buf:
        yield bytes(buf)


class Write(RunnableTask):
    """Write the rendered ``content`` to a new storage file: output ``uri``."""

    type_name: ClassVar[str] = "kray.core.storage.Write"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.storage.Write",)

    content: str
    extension: str = ".ion"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        name = f"{self.id}{_extension(ctx.render_str(self.extension))}"
        data = ctx.render_str(self.content).encode("utf-8")
        return {"uri": ctx.storage.put(ctx.storage_path(name), data)}


class Size(RunnableTask):
    """The size in bytes of a storage file: output ``size``."""

    type_name: ClassVar[str] = "kray.core.storage.Size"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.storage.Size",
                                          "io.kestra.core.tasks.storages.Size")

    uri: str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = _check_uri(ctx.render_str(self.uri))
        if not ctx.storage.exists(uri):
            raise TaskError(f"file not found: {uri}")
        return {"size": int(ctx.storage.size(uri))}


class Concat(RunnableTask):
    """Concatenate storage files, in order, into a new one: output ``uri``.

    ``files`` is a list of URIs or a template rendering to a JSON list of URIs (for example
    ``{{ outputs.split.uris }}``). ``separator``, when set, goes between two files.
    """

    type_name: ClassVar[str] = "kray.core.storage.Concat"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.storage.Concat",
                                          "io.kestra.core.tasks.storages.Concat")

    files: list[str] | str
    separator: str | None = None
    extension: str = ".tmp"

    def _uris(self, ctx: RunContext) -> list[str]:
        items = self.files if isinstance(self.files, list) else [self.files]
        uris: list[str] = []
        for item in items:
            rendered = ctx.render(item)
            if isinstance(rendered, str) and rendered.lstrip().startswith("["):
                try:
                    rendered = json.loads(rendered)
                except ValueError:
                    raise TaskError(f"files is not a JSON list of URIs: {rendered}") from None
            for uri in rendered if isinstance(rendered, list) else [rendered]:
                uris.append(_check_uri(uri, "each file"))
        return uris

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uris = self._uris(ctx)
        separator = self.separator.encode("utf-8") if self.separator else b""
        out = _Output(ctx, f"{self.id}{_extension(ctx.render_str(self.extension))}")
        try:
            for i, uri in enumerate(uris):
                if i and separator:
                    out.write(separator)
                with _reading(ctx, uri) as f:
                    while chunk := f.read(CHUNK):
                        out.write(chunk)
        except BaseException:
            out.abort()
            raise
        return {"uri": out.finish()}


class Split(RunnableTask):
    """Split a storage file into several, by ``rows`` per file, ``bytes`` per file (e.g.
    ``"10MB"``) or into ``partitions`` files of nearly equal row counts: output ``uris``.

    Rows are delimited by ``separator`` (default a newline) and never cut in two; each part
    keeps the source's row order, so concatenating the parts gives back the source exactly.
    A ``bytes`` part exceeds the limit only when a single row does.
    """

    type_name: ClassVar[str] = "kray.core.storage.Split"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.storage.Split",
                                          "io.kestra.core.tasks.storages.Split")

    from_: str = Field(alias="from")
    bytes_: int | str | None = Field(None, alias="bytes")
    partitions: int | str | None = None
    rows: int | str | None = None
    separator: str = "\n"

    @model_validator(mode="after")
    def _one_mode(self) -> Split:
        given = [n for n in ("bytes_", "partitions", "rows") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of 'bytes', 'partitions' or 'rows'")
        return self

    @field_validator("separator")
    @classmethod
    def _separator(cls, v: str) -> str:
        if not v:
            raise ValueError("separator must not be empty")
        return v

    def _count(self, ctx: RunContext, value: int | str, what: str) -> int:
        rendered = ctx.render(value)
        try:
            n = int(str(rendered).strip())
        except ValueError:
            raise TaskError(f"{what} must be an integer, got '{rendered}'") from None
        if n < 1:
            raise TaskError(f"{what} must be at least 1, got {n}")
        return n

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = _check_uri(ctx.render_str(self.from_), "from")
        sep = self.separator.encode("utf-8")
        ext = PurePosixPath(uri[len(SCHEME):]).suffix
        ext = ext if ext and _EXTENSION.match(ext) else ".tmp"
        if self.rows is not None:
            limit = self._count(ctx, self.rows, "rows")
            return {"uris": self._write(
                ctx, uri, sep, ext, lambda part, _row: part.rows >= limit)}
        if self.bytes_ is not None:
            raw = ctx.render(self.bytes_)
            max_bytes = parse_size(raw if isinstance(raw, int) else str(raw))
            return {"uris": self._write(
                ctx, uri, sep, ext, lambda part, row: part.size + len(row) > max_bytes)}
        partitions = self._count(ctx, self.partitions, "partitions")  # type: ignore[arg-type]
        with _reading(ctx, uri) as f:
            total = sum(1 for _ in _rows(f, sep))
        base, extra = divmod(total, partitions)
        sizes = [base + (1 if i < extra else 0) for i in range(partitions)]
        sizes = [s for s in sizes if s]

        def full(part: _Part, _row: bytes) -> bool:
            return part.rows >= sizes[part.index]

        return {"uris": self._write(ctx, uri, sep, ext, full)}

    def _write(self, ctx: RunContext, uri: str, sep: bytes, ext: str,
               full: Callable[[_Part, bytes], bool]) -> list[str]:
        """Stream the rows of ``uri`` into parts; ``full(part, row)`` says when ``row`` must
        start a new part (never asked about an empty part)."""
        uris: list[str] = []
        part: _Part | None = None
        try:
            with _reading(ctx, uri) as f:
                for row in _rows(f, sep):
                    if part is not None and full(part, row):
                        uris.append(part.finish())
                        part = None
                    if part is None:
                        part = _Part(ctx, f"{self.id}-{len(uris)}{ext}", len(uris))
                    part.write(row)
                    part.rows += 1
            if part is not None:
                uris.append(part.finish())
                part = None
        finally:
            if part is not None:
                part.abort()
        return uris


class _Part(_Output):
    def __init__(self, ctx: RunContext, name: str, index: int) -> None:
        super().__init__(ctx, name)
        self.index = index
        self.rows = 0


class Delete(RunnableTask):
    """Delete a storage file: outputs ``uri`` and ``deleted`` (false when it did not exist,
    or fail with ``errorOnMissing``)."""

    type_name: ClassVar[str] = "kray.core.storage.Delete"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.storage.Delete",
                                          "io.kestra.core.tasks.storages.Delete")

    uri: str
    error_on_missing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = _check_uri(ctx.render_str(self.uri))
        deleted = bool(ctx.storage.delete(uri))
        if not deleted and self.error_on_missing:
            raise TaskError(f"file not found: {uri}")
        return {"uri": uri, "deleted": deleted}


TASKS = [Write, Size, Concat, Split, Delete]
