"""``kray.fs.Trigger``: one execution per new file in a folder, local or on S3 (fsspec).

Every ``interval`` the folder (``from``: ``/data/inbox`` or ``s3://bucket/inbox``; Kestra's S3
shape ``bucket`` + ``prefix`` too) is listed, filtered (``regExp`` on the full path or the
path under the folder, ``glob`` on the path under the folder), and each file not seen yet
becomes one message, oldest first, at most ``maxFiles`` per poll (the rest comes at the next
fetch, without waiting for the next interval).

A file's message id is its URL and version (local: mtime and size; S3: ETag and size), so the
same file listed again is the same message (the executor starts it once), while a file
rewritten later is a new one. ``action`` says what happens once the file's execution is
durable (at ``ack``): ``MOVE`` it under ``moveDirectory`` (or S3's ``moveTo``), keeping its
path under the folder, ``DELETE`` it, or ``NONE``: leave it and remember it (the position
keeps, for each file still in the folder, the version that was processed; files that left
the folder are forgotten, so the position is as large as the folder's listing).

What the execution gets (``trigger.*``): ``uri`` (the file copied into kray's internal
storage, ``kray:///<ns>/<flow>/triggers/<trigger>/<digest>/<name>``, when the trigger actor
hands over the storage; else the file's own URL), ``path`` (the file's URL where it was
found), ``name``, ``size``, ``modified``, ``etag`` (S3), ``version``, ``movedTo`` (with MOVE:
where the file goes), and ``files``/``objects`` (a list of that one file, the shape Kestra's
fs and S3 triggers give, so ``ForEach`` over ``trigger.files`` works). The copy is made before
the message leaves the source, so the execution can read the file although the original is
moved or deleted right after the execution is durable.

Paths cannot escape: ``..`` segments are refused in ``from``, ``prefix``, ``moveDirectory``
and ``moveTo.key``; symbolic links are not followed; a listed name with a ``..`` segment (a
legal S3 key) is skipped, so a MOVE can never write outside ``moveDirectory``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, model_validator

from kray.task import Model
from kray.triggers.models import PollingTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, SourceError
from kray.triggers.sources.polling import PollingSource, Renderer, trigger_folder, trigger_storage

_PROTOCOL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class FileAction(StrEnum):
    MOVE = "MOVE"  # move the file under moveDirectory once its execution is durable
    DELETE = "DELETE"  # delete it once its execution is durable
    NONE = "NONE"  # leave it; the trigger remembers which version it processed


class MoveTo(Model):
    """Kestra's S3 ``moveTo``: the destination ``key`` (a prefix) and ``bucket`` (default:
    the watched bucket)."""

    key: str = Field(min_length=1)
    bucket: str | None = None


def _templated(value: str | None) -> bool:
    return value is not None and ("{{" in value or "{%" in value)


def _protocol(url: str) -> str:
    m = _PROTOCOL.match(url)
    return m.group(1).lower() if m else "file"


def check_location(value: str, field: str) -> str:
    """``value`` (a folder URL or absolute path) when it cannot escape; a ValueError naming
    ``field`` otherwise."""
    text = value.strip()
    if not text:
        raise ValueError(f"{field} must not be empty")
    rest = _PROTOCOL.sub("", text)
    if any(segment == ".." for segment in rest.replace("\\", "/").split("/")):
        raise ValueError(f"{field}: '..' segments are not allowed ('{text}')")
    if not _PROTOCOL.match(text) and not text.startswith("/"):
        raise ValueError(f"{field} must be an absolute path or a URL such as "
                         f"s3://bucket/folder, got '{text}'")
    return text


def _inside(child: str, parent: str) -> bool:
    child, parent = child.rstrip("/"), parent.rstrip("/")
    return child == parent or child.startswith(parent + "/")


class FileTrigger(PollingTrigger):
    """Poll a folder (local or ``s3://``) every ``interval``; one execution per new file."""

    kind: ClassVar[str] = "Files"

    from_: str | None = Field(None, alias="from", description="The folder: an absolute "
                              "path or an fsspec URL (s3://bucket/folder).")
    path: str | None = Field(None, description="Same as from.")
    bucket: str | None = Field(None, description="Kestra's S3 shape: the bucket (with prefix).")
    prefix: str | None = None
    recursive: bool | None = Field(None, description="List sub-folders too (default: false; "
                                   "true with bucket/prefix, as S3 listings are).")
    reg_exp: str | None = None
    regexp: str | None = None  # the S3 trigger's spelling
    glob: str | None = None
    action: FileAction = FileAction.NONE
    move_directory: str | None = None
    move_to: MoveTo | None = None
    max_files: int = Field(25, ge=1, le=10_000)
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec "
                                            "options of the filesystem (s3fs: key, secret, "
                                            "client_kwargs...).")
    access_key_id: str | None = None
    secret_key_id: str | None = None
    region: str | None = None
    endpoint_override: str | None = None
    endpoint_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _upper_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("action"), str):
            data = {**data, "action": data["action"].upper()}
        return data

    @model_validator(mode="after")
    def _check(self) -> FileTrigger:
        given = [n for n, v in (("from", self.from_), ("path", self.path),
                                ("bucket", self.bucket)) if v]
        if len(given) != 1:
            raise ValueError("give the folder to watch as exactly one of from, path or "
                             f"bucket (with prefix), not {' and '.join(given) or 'none'}")
        if self.prefix is not None and not self.bucket:
            raise ValueError("prefix goes with bucket")
        pattern = self.pattern()
        if pattern is not None and not _templated(pattern):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"regExp is not a valid regular expression: {e}") from None
        if self.action is FileAction.MOVE and not (self.move_directory or self.move_to):
            raise ValueError("action MOVE needs moveDirectory (or moveTo)")
        location, target = self.location(), self.move_target()
        if not _templated(location):
            check_location(location, "from")
        if target is not None and not _templated(target):
            check_location(target, "moveDirectory")
            if not _templated(location):
                _check_move(location, target, self.is_recursive())
        return self

    def pattern(self) -> str | None:
        return self.reg_exp or self.regexp

    def is_recursive(self) -> bool:
        return self.recursive if self.recursive is not None else bool(self.bucket)

    def location(self) -> str:
        """The folder's URL (may hold templates, rendered in the actor)."""
        if self.bucket:
            prefix = (self.prefix or "").strip("/")
            return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"
        return str(self.from_ or self.path).strip()

    def move_target(self) -> str | None:
        if self.move_directory:
            return self.move_directory.strip()
        if self.move_to is not None:
            bucket = self.move_to.bucket or self.bucket
            if not bucket:
                loc = self.location()
                bucket = _PROTOCOL.sub("", loc).split("/", 1)[0] if _protocol(loc) != "file" \
                    else None
            if not bucket:
                raise ValueError("moveTo needs a bucket (or use moveDirectory)")
            return f"s3://{bucket}/{self.move_to.key.strip('/')}"
        return None


def _check_move(location: str, target: str, recursive: bool) -> None:
    """A moved file must not be listed again: the move target may not be the folder, nor,
    with recursive listing, anywhere inside it."""
    if _protocol(location) != _protocol(target):
        raise ValueError("moveDirectory must be on the same filesystem as the watched folder")
    loc, dst = _PROTOCOL.sub("", location), _PROTOCOL.sub("", target)
    if loc.rstrip("/") == dst.rstrip("/"):
        raise ValueError("moveDirectory must not be the watched folder itself")
    if recursive and _inside(dst, loc):
        raise ValueError("moveDirectory must not be inside the watched folder when it is "
                         "listed recursively (moved files would be found again)")


register_source(FileTrigger, "kray.plugins.triggers.files:FileSource",
                "kray.fs.Trigger", "kray.file.Trigger", "io.kestra.plugin.fs.local.Trigger",
                "io.kestra.plugin.aws.s3.Trigger", "io.kestra.plugin.minio.Trigger")


# -- the source (runs in the trigger actor) -------------------------------------------------

class FileSource(PollingSource):
    """Lists the folder each poll; one message per file not seen yet."""

    trigger: FileTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.renderer = Renderer(self.context)
        seen = (position or {}).get("seen")
        self.seen: dict[str, str] = dict(seen) if isinstance(seen, Mapping) else {}
        self.pending: dict[str, str] = {}  # path -> version, fetched but not acknowledged
        self.fs: Any = None
        self.root = ""
        self.target: str | None = None
        self.storage: Any = None
        self.regex: re.Pattern[str] | None = None

    # -- connection ---------------------------------------------------------------------
    async def open(self) -> None:
        import fsspec.core

        t, r = self.trigger, self.renderer
        location = self._checked(str(t.location()), "from")
        target = t.move_target()
        if target is not None:
            target = self._checked(str(target), "moveDirectory")
            try:
                _check_move(location, target, t.is_recursive())
            except ValueError as e:
                raise SourceError(str(e)) from None
        options = self._options()
        try:
            fs, root = fsspec.core.url_to_fs(location, **options)
        except ImportError as e:
            raise SourceError(f"from: {location} needs a library that is not installed "
                              f"({e}); for s3:// pip install 'kray[s3]'") from None
        except Exception as e:  # noqa: BLE001 - bad options: the trigger's error, shown
            raise SourceError(f"from: cannot open {location}: {r.mask(str(e))}") from None
        self.fs, self.root = fs, root.rstrip("/")
        self.target = fs._strip_protocol(target).rstrip("/") if target else None
        self.storage = trigger_storage(self.context)
        pattern = t.pattern()
        try:
            self.regex = re.compile(pattern) if pattern else None
        except re.error as e:
            raise SourceError(f"regExp is not a valid regular expression: {e}") from None
        if _protocol(location) == "file" and not await asyncio.to_thread(fs.isdir, root):
            raise SourceError(f"from: the folder {location} does not exist")

    def _checked(self, value: str, field: str) -> str:
        try:
            return check_location(value, field)
        except ValueError as e:
            raise SourceError(str(e)) from None

    def _options(self) -> dict[str, Any]:
        """fsspec options, with Kestra's S3 properties mapped onto s3fs's."""
        t, r = self.trigger, self.renderer
        options: dict[str, Any] = dict(t.storage_options)
        key, secret = t.access_key_id, t.secret_key_id
        r.hide(secret, options.get("secret"))
        if key:
            options["key"] = key
        if secret:
            options["secret"] = secret
        endpoint = t.endpoint_url or t.endpoint_override
        region = t.region
        if endpoint or region:
            client = dict(options.get("client_kwargs") or {})
            if endpoint:
                client["endpoint_url"] = endpoint
            if region:
                client["region_name"] = region
            options["client_kwargs"] = client
        return options

    # -- polling ------------------------------------------------------------------------
    async def poll(self, slot_us: int, max_messages: int) -> list[Message]:
        if self.fs is None:
            await self.open()
        try:
            listed = await asyncio.to_thread(self._list)
        except FileNotFoundError:
            listed = []
        except Exception as e:  # noqa: BLE001 - the filesystem went away: back off
            raise SourceError(f"cannot list {self._url(self.root)}: "
                              f"{self.renderer.mask(str(e))}") from None
        if self.trigger.action is FileAction.NONE:
            present = {entry["path"] for entry in listed}
            self.seen = {p: v for p, v in self.seen.items() if p in present}
        fresh = [e for e in listed if self.seen.get(e["path"]) != e["version"]
                 and self.pending.get(e["path"]) != e["version"]]
        limit = min(self.trigger.max_files, max_messages)
        self.more_pending = len(fresh) > limit
        messages = []
        for entry in fresh[:limit]:
            messages.append(await self._message(entry))
            self.pending[entry["path"]] = entry["version"]
        return messages

    def _list(self) -> list[dict[str, Any]]:
        """Every file under the folder (not links, not names with ``..``), oldest first."""
        fs, root = self.fs, self.root
        fs.invalidate_cache(root)
        found = fs.find(root, maxdepth=None if self.trigger.is_recursive() else 1,
                        detail=True, withdirs=False)
        regex = self.regex
        entries = []
        for path, info in found.items():
            path = str(path).rstrip("/")
            if info.get("type") != "file" or info.get("islink") or not path.startswith(
                    root + "/"):
                continue
            relative = path[len(root) + 1:]
            if ".." in relative.split("/"):
                continue
            url = self._url(path)
            if regex is not None and not (regex.fullmatch(url) or regex.fullmatch(path)
                                          or regex.fullmatch(relative)):
                continue
            if self.trigger.glob and not fnmatch.fnmatchcase(relative, self.trigger.glob):
                continue
            entries.append(_entry(path, relative, url, info))
        entries.sort(key=lambda e: (e["modified"] or "", e["path"]))
        return entries

    def _url(self, path: str) -> str:
        return path if _protocol(self.fs.unstrip_protocol(path)) == "file" else \
            self.fs.unstrip_protocol(path)

    async def _message(self, entry: dict[str, Any]) -> Message:
        """The message of one file; its copy in internal storage made first."""
        path = entry.pop("_fs_path")
        variables = dict(entry)
        variables["uri"] = variables["path"]
        if self.target is not None:
            variables["movedTo"] = self._url(f"{self.target}/{entry['relativePath']}")
        message_id = f"{entry['path']}@{entry['version']}"
        if self.storage is not None:
            variables["uri"] = await asyncio.to_thread(self._copy, path, entry["name"],
                                                       message_id)
        listed = {k: v for k, v in variables.items()}
        variables["files"] = [listed]
        variables["objects"] = [listed]
        return Message(message_id, variables, (path, entry["path"], entry["version"]))

    def _copy(self, path: str, name: str, message_id: str) -> str:
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
        safe = _SAFE_NAME.sub("_", name).strip("._") or "file"
        uri = self.storage.uri(f"{trigger_folder(self.context)}/{digest}/{safe[-100:]}")
        try:
            with self.fs.open(path, "rb") as src, self.storage.open(uri, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except Exception as e:  # noqa: BLE001 - the file vanished or storage failed
            raise SourceError(f"cannot copy {self._url(path)} to internal storage: "
                              f"{self.renderer.mask(str(e))}") from None
        return str(uri)

    # -- after the executions are durable -----------------------------------------------
    async def ack(self, messages: list[Message]) -> None:
        for message in messages:
            path, shown, version = message.token
            if self.trigger.action is FileAction.NONE:
                self.seen[shown] = version
            else:
                try:
                    await asyncio.to_thread(self._dispose, path)
                except Exception as e:  # noqa: BLE001 - retried: the id is known, no rerun
                    raise SourceError(f"cannot {self.trigger.action.value.lower()} "
                                      f"{shown}: {self.renderer.mask(str(e))}") from None
            if self.pending.get(shown) == version:
                del self.pending[shown]

    def _dispose(self, path: str) -> None:
        fs = self.fs
        try:
            if self.trigger.action is FileAction.DELETE:
                fs.rm_file(path)
                return
            assert self.target is not None
            destination = f"{self.target}/{path[len(self.root) + 1:]}"
            parent = destination.rsplit("/", 1)[0]
            fs.makedirs(parent, exist_ok=True)
            fs.mv(path, destination)
        except FileNotFoundError:
            pass  # gone already: moved or deleted by an earlier ack of the same message

    def position(self) -> dict[str, Any] | None:
        if self.trigger.action is FileAction.NONE:
            return {"seen": dict(self.seen)}
        return None

    async def close(self) -> None:
        self.fs = None


def _entry(path: str, relative: str, url: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """What the execution sees of one listed file (plus ``_fs_path``, the source's own)."""
    size = int(info.get("size") or 0)
    modified = _modified(info)
    etag = info.get("ETag") or info.get("etag")
    etag = str(etag).strip('"') if etag else None
    mtime = info.get("mtime")
    if etag:
        version = f"{etag}-{size}"
    elif mtime is not None:
        version = f"{float(mtime):.6f}-{size}"
    else:
        version = f"{modified}-{size}"
    entry: dict[str, Any] = {"_fs_path": path, "path": url, "name": relative.rsplit("/", 1)[-1],
                             "relativePath": relative, "size": size, "modified": modified,
                             "version": version}
    if etag:
        entry["etag"] = etag
    if url.startswith("s3://"):
        bucket, _, key = url[len("s3://"):].partition("/")
        entry.update(bucket=bucket, key=key)
    return entry


def _modified(info: Mapping[str, Any]) -> str | None:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return str(value) if value is not None else None


__all__ = ["FileAction", "FileSource", "FileTrigger"]
