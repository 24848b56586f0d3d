"""Key-value store tasks: ``Set``, ``Get``, ``GetKeys``, ``Delete``.

Each works on one namespace's KV store: the flow's namespace unless ``namespace`` is given.
Keys, values and namespaces are templates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from kray.errors import TaskError
from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext

KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")


class _KVTask(RunnableTask):
    namespace: str | None = None

    def _namespace(self, ctx: RunContext) -> str:
        return ctx.render_str(self.namespace) if self.namespace else ctx.namespace

    def _key(self, ctx: RunContext, key: str) -> str:
        rendered = ctx.render_str(key).strip()
        if not rendered:
            raise TaskError("the KV key must not be empty")
        return rendered


class Set(_KVTask):
    """Store ``value`` under ``key``, optionally for ``ttl`` only.

    With ``overwrite: false`` the task fails when the key already exists. ``kvType`` (STRING,
    NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON) types the rendered value.
    """

    type_name: ClassVar[str] = "kray.core.kv.Set"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.kv.Set",)

    key: str
    value: Any = None
    overwrite: bool = True
    ttl: timedelta | None = None
    kv_type: str | None = None

    @field_validator("kv_type", mode="before")
    @classmethod
    def _kv_type(cls, v: Any) -> Any:
        if v is None:
            return v
        name = str(v).upper()
        if name not in KV_TYPES:
            raise ValueError(f"kvType must be one of {', '.join(KV_TYPES)}")
        return name

    @field_validator("ttl")
    @classmethod
    def _positive_ttl(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("ttl must be positive")
        return v

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        value = ctx.render(self.value)
        ttl = self.ttl.total_seconds() if self.ttl is not None else None
        # The store coerces the value to ``kvType`` and refuses what does not fit (KVError).
        stored = ctx.kv.set(namespace, key, value, ttl_seconds=ttl,  # type: ignore[call-arg]
                            overwrite=self.overwrite, kv_type=self.kv_type)
        if not stored:
            raise TaskError(f"KV key '{key}' already exists in namespace '{namespace}' "
                            "and overwrite is false")
        return {}


class Get(_KVTask):
    """Read ``key``: output ``value`` (null when missing, or fail with ``errorOnMissing``)."""

    type_name: ClassVar[str] = "kray.core.kv.Get"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.kv.Get",)

    key: str
    error_on_missing: bool = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        value = ctx.kv.get(namespace, key)
        if value is None and self.error_on_missing:
            raise TaskError(f"no KV key '{key}' in namespace '{namespace}'")
        return {"value": value}


class GetKeys(_KVTask):
    """List the keys of a namespace, optionally only those starting with ``prefix``:
    output ``keys``."""

    type_name: ClassVar[str] = "kray.core.kv.GetKeys"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.kv.GetKeys",)

    prefix: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        prefix = ctx.render_str(self.prefix) if self.prefix else ""
        return {"keys": list(ctx.kv.keys(self._namespace(ctx), prefix))}


class Delete(_KVTask):
    """Delete ``key``: output ``deleted`` (false when it did not exist, or fail with
    ``errorOnMissing``)."""

    type_name: ClassVar[str] = "kray.core.kv.Delete"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.kv.Delete",)

    key: str
    error_on_missing: bool = Field(False)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace, key = self._namespace(ctx), self._key(ctx, self.key)
        deleted = bool(ctx.kv.delete(namespace, key))
        if not deleted and self.error_on_missing:
            raise TaskError(f"no KV key '{key}' in namespace '{namespace}' to delete")
        return {"deleted": deleted}


TASKS = [Set, Get, GetKeys, Delete]
