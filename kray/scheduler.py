"""Triggers inside the executor (being written): schedules, flow triggers, webhooks.

``SchedulerMixin`` is mixed into ``ExecutorService``; the executor calls these hooks.
"""

from __future__ import annotations

from typing import Any


class SchedulerMixin:
    async def _start_triggers(self) -> None:
        """Called once the executor has recovered: arm every trigger."""

    def _flow_changed(self, namespace: str, flow_id: str) -> None:
        """Called after a flow was deployed, changed or deleted."""

    def _trigger_on_end(self, execution: Any) -> None:
        """Called when an execution reaches a terminal state (Flow triggers)."""
