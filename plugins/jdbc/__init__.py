"""``kray.plugins.jdbc``: Kestra's JDBC task family on Python drivers.

* ``kray.jdbc.postgresql.Query`` / ``CopyIn`` (psycopg 3);
* ``kray.jdbc.mysql.Query`` / ``Load`` (PyMySQL), for MySQL and MariaDB.

Drivers (``pip install 'kray[sql]'``) are imported when a task runs, so the plugin registers
even where they are missing. ``results`` and ``sqltext`` are shared with ``kray.plugins.duckdb``.
"""

from __future__ import annotations

from typing import Any

from kray.plugins.jdbc import mysql, postgresql

TASKS: list[type] = [*postgresql.TASKS, *mysql.TASKS]


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``)."""
    for cls in TASKS:
        registry.register(cls)
