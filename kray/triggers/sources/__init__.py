"""Realtime and polling trigger types: their models and the ``Source`` each runs.

Each type registers here its pydantic model (validated at deploy, importable without the
broker's client library) and the dotted path of its ``Source`` class (imported only inside
the trigger actor, where the client library must be installed: ``pip install 'kray[triggers]'``).
"""

from __future__ import annotations

import importlib
import logging
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


def _load_builtin() -> None:
    # Each module calls register_source at import; listed here so registration is explicit.
    # One that fails to import is reported, not fatal: the other types still load.
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            logging.getLogger("kray.triggers").error("trigger types of %s not loaded: %s",
                                                     module, e)


#: Modules defining the built-in source types (models only at import; no client libraries).
BUILTIN_MODULES: list[str] = [
    "kray.triggers.sources.redis",
    "kray.triggers.sources.http",
    "kray.triggers.sources.files",
    "kray.triggers.sources.sql",
    "kray.triggers.sources.mqtt",
    "kray.triggers.sources.nats",
    "kray.triggers.sources.amqp",
]

_load_builtin()

__all__ = ["Message", "SOURCE_TYPES", "Source", "SourceError", "SourceType", "register_source"]
