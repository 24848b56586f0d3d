"""Script tasks: shell, Python and Node.js scripts run as processes on the Ray worker.

Modules: ``shell``, ``python``, ``node`` (the task types), ``base`` (what they share),
``process`` (running one process), ``protocol`` (``::{...}::`` lines), ``files`` (input,
namespace and output files), ``venv`` (cached environments for Python ``dependencies``).
"""

from __future__ import annotations

from typing import Any

from kray.plugins.scripts import node, python, shell

TASKS: list[type] = [*shell.TASKS, *python.TASKS, *node.TASKS]


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``): register every script task type."""
    for cls in TASKS:
        registry.register(cls)
