"""The core task types. Each module lists its task classes in ``TASKS``."""

from __future__ import annotations

from importlib import import_module
from typing import Any

MODULES = ("flowable", "log", "outputs", "flow", "execution", "kv", "storage", "items",
           "namespace", "foreachitem")


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``): register every core task type."""
    for name in MODULES:
        module = import_module(f"{__name__}.{name}")
        for cls in getattr(module, "TASKS", ()):
            registry.register(cls)
