"""kray.plugins.http: HTTP tasks (``kray.http.Request``, ``kray.http.Download``).

Every connection goes through an address guard that refuses link-local and cloud metadata
addresses (see ``kray.plugins.http.guard``).
"""

from __future__ import annotations

from typing import Any

from kray.plugins.http.tasks import TASKS, Download, Request

__all__ = ["TASKS", "Download", "Request", "register"]


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``): register the HTTP task types."""
    for cls in TASKS:
        registry.register(cls)
