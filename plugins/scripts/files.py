"""Files in and out of a script's working folder: ``inputFiles``, ``namespaceFiles``,
``outputFiles`` and the output folder.

Paths are relative POSIX paths that must stay inside the working folder. Globs follow
Kestra's (Java's) syntax on paths relative to the working folder: ``*`` and ``?`` stay within
one folder, ``**`` crosses folders, ``{a,b}`` is either, ``[abc]`` a class; ``**/`` also
matches no folder at all, so ``**/*.csv`` finds ``a.csv`` as well as ``x/y/a.csv``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kray.errors import StoragePathError, TaskError
from kray.runcontext import NAMESPACE_FILES, namespace_file_path

if TYPE_CHECKING:
    from kray.context import RunContext

SCHEME = "kray://"
NSFILE = "nsfile://"  # Kestra's URI for a namespace file: nsfile:///path/in/namespace
OUTPUTS = "_outputs"  # output folders live under <workingDir>/_outputs/<taskRunId>
CHUNK = 1 << 20


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of one glob (see the module's docstring)."""
    out, i, depth = [], 0, 0
    pattern = pattern.removeprefix("./")
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out.append(f"[^{body[1:]}]" if body.startswith("!") else f"[{body}]")
                i = end
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    out.append(")" * depth)
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as e:
        raise TaskError(f"invalid glob '{pattern}': {e}") from None


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(glob_regex(p).match(path) for p in patterns)


def inside(folder: Path, name: str, what: str) -> Path:
    """``folder / name``, refusing absolute names and names that climb out with ``..``."""
    rel = PurePosixPath(str(name).replace("\\", "/"))
    if not str(name).strip() or rel.is_absolute() or ".." in rel.parts:
        raise TaskError(f"{what} '{name}' must be a relative path inside the working folder")
    return folder.joinpath(*rel.parts)


def _copy_from_storage(ctx: RunContext, uri: str, dest: Path) -> None:
    try:
        src = ctx.storage.open(uri, "rb")
    except FileNotFoundError:
        raise TaskError(f"file not found: {uri}") from None
    with src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def input_files(ctx: RunContext, spec: dict[str, str] | str | None,
                extra: dict[str, Any]) -> dict[str, str]:
    """The rendered ``inputFiles`` map: a map, or a template rendering to a JSON map."""
    if spec is None:
        return {}
    rendered = ctx.render(spec, extra)
    if isinstance(rendered, str):
        try:
            rendered = json.loads(rendered) if rendered.strip() else {}
        except ValueError:
            raise TaskError("inputFiles must be a map of file name to content or URI, or "
                            "a JSON object") from None
    if not isinstance(rendered, dict):
        raise TaskError(f"inputFiles must be a map, got {type(rendered).__name__}")
    return {str(k): "" if v is None else v if isinstance(v, str) else json.dumps(v)
            for k, v in rendered.items()}


def write_input_files(ctx: RunContext, folder: Path, files: dict[str, str]) -> None:
    """Write each file: content as UTF-8 text, a ``kray://`` URI downloaded from internal
    storage, an ``nsfile:///path`` copied from the namespace's files."""
    for name, value in files.items():
        dest = inside(folder, name, "input file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        ref = value.strip()
        if "\n" not in ref and ref.startswith(SCHEME):
            _copy_from_storage(ctx, ref, dest)
        elif "\n" not in ref and ref.startswith(NSFILE):
            path = ref[len(NSFILE):].lstrip("/")
            _copy_from_storage(ctx, namespace_file_path(ctx.namespace, path), dest)
        else:
            dest.write_text(value, encoding="utf-8")


def copy_namespace_files(ctx: RunContext, folder: Path, *, include: list[str],
                         exclude: list[str], namespaces: list[str], if_exists: str,
                         folder_per_namespace: bool) -> int:
    """Copy the namespace files that ``include`` (all when empty) and not ``exclude`` into
    ``folder``; return how many. ``if_exists``: OVERWRITE, FAIL, WARN (keep the existing file,
    with a warning) or IGNORE (keep it silently)."""
    lister = getattr(ctx.storage, "list", None)
    if lister is None:
        raise TaskError("this internal storage cannot list namespace files")
    count = 0
    for namespace in namespaces:
        prefix = f"{namespace.replace('.', '/')}/{NAMESPACE_FILES}"
        for uri in lister(prefix):
            rel = uri[len(SCHEME):].lstrip("/")[len(prefix) + 1:]
            if (include and not matches(rel, include)) or matches(rel, exclude):
                continue
            name = f"{namespace}/{rel}" if folder_per_namespace else rel
            dest = inside(folder, name, "namespace file")
            if dest.exists() and if_exists != "OVERWRITE":
                if if_exists == "FAIL":
                    raise TaskError(f"namespace file '{name}' already exists in the working "
                                    "folder (namespaceFiles.ifExists: FAIL)")
                if if_exists == "WARN":
                    ctx.logger.warning(f"namespace file '{name}' already exists; kept")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy_from_storage(ctx, uri, dest)
            count += 1
    return count


def _walk(folder: Path, skip_top: str | None = None) -> Iterable[tuple[str, Path]]:
    """Every regular file under ``folder`` as (relative POSIX path, path), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        if skip_top is not None and Path(root) == folder and skip_top in dirs:
            dirs.remove(skip_top)
        for name in files:
            path = Path(root, name)
            if path.is_file():
                found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def _upload(ctx: RunContext, rel: str, path: Path) -> str:
    try:
        return ctx.storage.put_file(ctx.storage_path(rel), path)
    except StoragePathError as e:
        raise TaskError(f"cannot upload output file '{rel}': {e}") from None


def upload_outputs(ctx: RunContext, folder: Path, patterns: list[str],
                   output_dir: Path) -> dict[str, str]:
    """Upload the files of ``folder`` matching ``patterns`` (the output folders excluded) and
    every file of ``output_dir``: ``{relative name: kray URI}``."""
    uploaded: dict[str, str] = {}
    if patterns:
        for rel, path in _walk(folder, skip_top=OUTPUTS):
            if matches(rel, patterns):
                uploaded[rel] = _upload(ctx, rel, path)
    if output_dir.is_dir():
        for rel, path in _walk(output_dir):
            uploaded[rel] = _upload(ctx, rel, path)
    return uploaded
