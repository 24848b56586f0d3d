"""Namespace files: ``UploadFiles``, ``DownloadFiles`` and ``DeleteFiles``.

Namespace files live in internal storage under their namespace's ``_files`` folder
(``kray.runcontext.namespace_file_path``): ``company.team`` + ``sql/q.sql`` is
``kray:///company/team/_files/sql/q.sql``. Templates read them with ``read('sql/q.sql')``.
Paths are relative to the namespace (a leading ``/`` is ignored); ``..`` and other escapes
are refused by the storage layer. ``files`` patterns are globs: ``*`` and ``?`` stay within
one folder, ``**`` crosses folders (``**.sql``, ``sql/**``).
"""

from __future__ import annotations

import glob as globlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from kray.errors import TaskError
from kray.flow.model import NAMESPACE_PATTERN
from kray.runcontext import namespace_file_path
from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext

K = "io.kestra.plugin.core.namespace."
SCHEME = "kray://"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


class Conflict(StrEnum):
    OVERWRITE = "OVERWRITE"  # replace the existing file
    ERROR = "ERROR"  # fail the task
    SKIP = "SKIP"  # keep the existing file


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over ``/``-separated paths as a regex: ``**`` any depth, ``*`` and ``?`` within
    one segment, ``[abc]`` a character class."""
    text = pattern.strip().lstrip("/")
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := text.find("]", i + 1)) > i + 1:
            body = text[i + 1:end].replace("\\", "\\\\")
            out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _list_arg(ctx: RunContext, value: Any, what: str) -> list[str]:
    """A list of strings from a list, one string, or a template rendering to a JSON list."""
    rendered = ctx.render(value)
    if isinstance(rendered, str) and rendered.lstrip().startswith("["):
        try:
            rendered = json.loads(rendered)
        except ValueError:
            raise TaskError(f"{what} is not a JSON list: {rendered}") from None
    items = rendered if isinstance(rendered, list) else [rendered]
    return [str(x).strip() for x in items if x is not None and str(x).strip()]


class _NamespaceTask(RunnableTask):
    namespace: str | None = Field(None, description="Default: the flow's namespace.")

    def _namespace(self, ctx: RunContext) -> str:
        ns = ctx.render_str(self.namespace).strip() if self.namespace else ctx.namespace
        if not _NAMESPACE.match(ns) or ".." in ns or ns.endswith("."):
            raise TaskError(f"invalid namespace '{ns}'")
        return ns

    @staticmethod
    def _uri(namespace: str, path: str) -> str:
        from kray.storage.internal import InternalStorage
        clean = path.strip().lstrip("/")
        if not clean:
            raise TaskError("a namespace file path must not be empty")
        return InternalStorage.uri(namespace_file_path(namespace, clean))

    @staticmethod
    def _listing(ctx: RunContext, namespace: str) -> dict[str, str]:
        """Every namespace file: path -> URI."""
        lister = getattr(ctx.storage, "list", None)
        if lister is None:
            raise TaskError("this storage cannot list files")
        root = namespace_file_path(namespace, "")
        prefix = f"{SCHEME}/{root}"
        return {uri[len(prefix):]: uri for uri in lister(root.rstrip("/"))}

    def _matching(self, ctx: RunContext, namespace: str, patterns: list[str]) -> dict[str, str]:
        listing = self._listing(ctx, namespace)
        regexes = [glob_regex(p) for p in patterns]
        return {path: uri for path, uri in listing.items()
                if any(r.match(path) for r in regexes)}


class UploadFiles(_NamespaceTask):
    """Upload files to namespace files: outputs ``files`` (namespace path -> ``kray://`` URI).

    ``files`` is a list (``kray://`` URIs, uploaded under ``destination`` by their file name;
    or globs matched in the task's working directory, uploaded under ``destination`` by their
    relative path) or a map of namespace path (under ``destination``) -> ``kray://`` URI.
    ``filesMap`` is Kestra's name for the map. ``conflict`` says what to do when a file exists:
    ``OVERWRITE`` (the default), ``ERROR`` or ``SKIP``.
    """

    type_name: ClassVar[str] = "kray.core.namespace.UploadFiles"
    aliases: ClassVar[tuple[str, ...]] = (K + "UploadFiles",)

    files: list[str] | dict[str, str] | str | None = None
    files_map: dict[str, str] | str | None = None
    destination: str = "/"
    conflict: Conflict = Conflict.OVERWRITE

    def _sources(self, ctx: RunContext) -> list[tuple[str, str | Path]]:
        """(namespace path under destination, kray:// URI or local file) pairs."""
        pairs: list[tuple[str, str | Path]] = []
        for value in (self.files, self.files_map):
            if value is None:
                continue
            rendered = ctx.render(value)
            if isinstance(rendered, str) and rendered.lstrip().startswith("{"):
                try:
                    rendered = json.loads(rendered)
                except ValueError:
                    raise TaskError(f"files is not a JSON map: {rendered}") from None
            if isinstance(rendered, dict):
                for path, uri in rendered.items():
                    pairs.append((str(path), self._source(ctx, str(uri))))
                continue
            for item in _list_arg(ctx, rendered, "files"):
                if item.startswith(SCHEME):
                    pairs.append((item.rsplit("/", 1)[-1], item))
                else:
                    pairs.extend(self._globbed(ctx, item))
        if not pairs:
            raise TaskError("no file to upload: set 'files' (or 'filesMap')")
        return pairs

    @staticmethod
    def _source(ctx: RunContext, value: str) -> str | Path:
        if value.startswith(SCHEME):
            return value
        return UploadFiles._local(ctx, value)

    @staticmethod
    def _local(ctx: RunContext, relative: str) -> Path:
        root = ctx.working_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise TaskError(f"'{relative}' is neither a kray:// URI nor a file of the working "
                            "directory")
        return path

    @staticmethod
    def _globbed(ctx: RunContext, pattern: str) -> list[tuple[str, str | Path]]:
        root = ctx.working_dir.resolve()
        regex = glob_regex(pattern)
        found: list[tuple[str, str | Path]] = []
        for name in sorted(globlib.glob("**", root_dir=root, recursive=True)):
            path = (root / name).resolve()
            if path.is_file() and path.is_relative_to(root) and regex.match(name):
                found.append((name, path))
        if not found:
            raise TaskError(f"no file of the working directory matches '{pattern}'")
        return found

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = self._namespace(ctx)
        destination = ctx.render_str(self.destination).strip().strip("/")
        uploaded: dict[str, str] = {}
        for name, source in self._sources(ctx):
            path = f"{destination}/{name.lstrip('/')}" if destination else name.lstrip("/")
            target = self._uri(namespace, path)
            if ctx.storage.exists(target):
                if self.conflict == Conflict.ERROR:
                    raise TaskError(f"namespace file '{path}' already exists (conflict: ERROR)")
                if self.conflict == Conflict.SKIP:
                    ctx.logger.info(f"kept the existing namespace file {path}")
                    continue
            if isinstance(source, Path):
                ctx.storage.put_file(target, source)
            else:
                try:
                    with ctx.storage.open(source, "rb") as src, \
                            ctx.storage.open(target, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
                except FileNotFoundError:
                    raise TaskError(f"file not found: {source}") from None
            ctx.logger.info(f"uploaded {path} to namespace {namespace}")
            uploaded[path] = target
        return {"files": uploaded}


class DownloadFiles(_NamespaceTask):
    """Download the namespace files matching ``files`` (globs) into the working directory
    (under ``destination``) and into this task run's storage: outputs ``files`` (namespace
    path -> ``kray://`` URI of the copy, a snapshot that later uploads do not change)."""

    type_name: ClassVar[str] = "kray.core.namespace.DownloadFiles"
    aliases: ClassVar[tuple[str, ...]] = (K + "DownloadFiles",)

    files: list[str] | str
    destination: str = ""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = self._namespace(ctx)
        matched = self._matching(ctx, namespace, _list_arg(ctx, self.files, "files"))
        root = ctx.working_dir.resolve()
        folder = (root / ctx.render_str(self.destination).strip().lstrip("/")).resolve()
        if not folder.is_relative_to(root):
            raise TaskError("destination must stay inside the working directory")
        out: dict[str, str] = {}
        for path, uri in sorted(matched.items()):
            local = (folder / path).resolve()
            if not local.is_relative_to(folder):  # storage paths never escape; be sure
                raise TaskError(f"unsafe namespace file path '{path}'")
            local.parent.mkdir(parents=True, exist_ok=True)
            with ctx.storage.open(uri, "rb") as src, open(local, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            out[path] = ctx.storage.put_file(ctx.storage_path(path), local)
        ctx.logger.info(f"downloaded {len(out)} namespace file(s) from {namespace}")
        return {"files": out}


class DeleteFiles(_NamespaceTask):
    """Delete the namespace files matching ``files`` (globs): outputs ``files`` (the paths
    deleted). With ``errorOnMissing``, a pattern that matches nothing fails the task."""

    type_name: ClassVar[str] = "kray.core.namespace.DeleteFiles"
    aliases: ClassVar[tuple[str, ...]] = (K + "DeleteFiles",)

    files: list[str] | str
    error_on_missing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = self._namespace(ctx)
        patterns = _list_arg(ctx, self.files, "files")
        if self.error_on_missing:
            listing = self._listing(ctx, namespace)
            for pattern in patterns:
                regex = glob_regex(pattern)
                if not any(regex.match(p) for p in listing):
                    raise TaskError(f"no namespace file matches '{pattern}'")
        deleted = [path for path, uri in sorted(self._matching(ctx, namespace,
                                                                patterns).items())
                   if ctx.storage.delete(uri)]
        ctx.logger.info(f"deleted {len(deleted)} namespace file(s) from {namespace}")
        return {"files": deleted}


TASKS = [UploadFiles, DownloadFiles, DeleteFiles]
