"""Runnable tasks of Kestra's ``flow`` package: ``Sleep``. (The flowable ones live in
``flowable.py``.)"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext


class Sleep(RunnableTask):
    """Wait for ``duration`` (ISO-8601, e.g. ``PT5S``) on the worker, then succeed."""

    type_name: ClassVar[str] = "kray.core.flow.Sleep"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.flow.Sleep",)

    duration: timedelta

    @field_validator("duration")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v < timedelta(0):
            raise ValueError("duration must not be negative")
        return v

    def run(self, ctx: RunContext) -> dict[str, Any]:
        ctx.logger.debug(f"sleeping for {self.duration}")
        time.sleep(self.duration.total_seconds())
        return {}


TASKS = [Sleep]
