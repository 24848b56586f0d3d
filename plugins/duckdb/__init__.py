"""``kray.plugins.duckdb``: SQL on an embedded DuckDB (``kray.duckdb.Query``,
``kray.duckdb.Queries``), with internal storage readable from SQL as ``kray:///...``.

DuckDB itself is imported when a task runs, not when the plugin registers.
"""

from __future__ import annotations

from typing import Any

from kray.plugins.duckdb.query import Queries, Query

TASKS: list[type] = [Query, Queries]


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``)."""
    for cls in TASKS:
        registry.register(cls)
