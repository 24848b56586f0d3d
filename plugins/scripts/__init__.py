"""kray.plugins.scripts (being written)."""

from __future__ import annotations

from typing import Any

TASKS: list = []


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``)."""
    for cls in TASKS:
        registry.register(cls)
