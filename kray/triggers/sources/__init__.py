"""Realtime and polling trigger types: their models and the ``Source`` each runs.

The SDK for trigger plugins: ``Source`` and ``Message`` (``base``), ``PollingSource``
(``polling``) and helpers for broker payloads (``brokerutil``). A plugin registers each type
with ``register_source``: its pydantic model (validated at deploy, importable without the
broker's client library) and the dotted path of its ``Source`` class (imported only inside
the trigger actor, where the client library must be installed: ``pip install
'kray[triggers]'`` for the built-in ones, in ``kray.plugins.triggers``). The plugin's
``register(registry)`` also makes each name a trigger type of the registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from kray.triggers.sources.base import Message, Source, SourceError


@dataclass(frozen=True)
class SourceType:
    model: type  # a ``kray.triggers.models.TriggerBase`` subclass with ``kind`` set
    source: str  # "package.module:ClassName" of its ``Source``

    def source_class(self) -> type[Source]:
        module, _, name = self.source.partition(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


#: Every realtime/polling trigger type name (kray's and Kestra's aliases) -> its SourceType.
SOURCE_TYPES: dict[str, SourceType] = {}


def register_source(model: type, source: str, *names: str) -> None:
    """Register ``model`` and its source under each of ``names``."""
    for name in names:
        SOURCE_TYPES[name] = SourceType(model, source)


def source_types() -> dict[str, SourceType]:
    """Every registered type: the plugins register theirs when the process-wide plugin
    registry loads (``kray.plugins`` entry points: ``kray.plugins.triggers`` for the built-in
    brokers and polls)."""
    from kray.registry import PluginRegistry
    PluginRegistry.default()
    return SOURCE_TYPES


__all__ = ["Message", "SOURCE_TYPES", "Source", "SourceError", "SourceType", "register_source",
           "source_types"]
