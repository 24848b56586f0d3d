"""acme_text: an example kray plugin. Its entry point (group ``kray.plugins``) is
``register``, which kray calls with its plugin registry."""

from __future__ import annotations

from typing import Any

from acme_text.tasks import WordCount

TASKS = [WordCount]

__all__ = ["TASKS", "WordCount", "register"]


def register(registry: Any) -> None:
    """Register every task type of this plugin."""
    for cls in TASKS:
        registry.register(cls)
