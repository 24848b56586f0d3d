"""``Log``: write rendered messages to the task's log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from kray.logs import emit, normalize_level
from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext


class Log(RunnableTask):
    """Log one message, or each message of a list, at ``level`` (default INFO).

    Outputs nothing. Messages are templates, rendered before they are logged; secrets read
    while rendering are masked in the log.
    """

    type_name: ClassVar[str] = "kray.core.log.Log"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.log.Log",
                                          "io.kestra.core.tasks.log.Log")

    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"

    @field_validator("message", mode="before")
    @classmethod
    def _scalars(cls, v: Any) -> Any:
        """``message: 42`` in YAML logs "42" (and ``true`` logs "true")."""
        return [_text(m) for m in v] if isinstance(v, list) else _text(v)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        try:
            return normalize_level(v) if isinstance(v, str) else v
        except ValueError:
            return v  # let the Literal report it

    def run(self, ctx: RunContext) -> dict[str, Any]:
        messages = self.message if isinstance(self.message, list) else [self.message]
        for message in messages:
            emit(ctx.logger, self.level, ctx.render_str(message))
        return {}


def _text(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, (int, float)) else v


TASKS = [Log]
