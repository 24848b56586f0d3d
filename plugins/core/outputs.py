"""Tasks whose whole job is to produce outputs: ``Return`` and ``OutputValues``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from kray.task import RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext


class Return(RunnableTask):
    """Render ``format`` and return it as output ``value`` (``None`` when no format)."""

    type_name: ClassVar[str] = "kray.core.debug.Return"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.debug.Return",
                                          "io.kestra.core.tasks.debugs.Return")

    format: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"value": None if self.format is None else ctx.render_str(self.format)}


class OutputValues(RunnableTask):
    """Render every string inside ``values`` (recursively) and return them as output
    ``values``: ``{{ outputs.<id>.values.<key> }}``."""

    type_name: ClassVar[str] = "kray.core.output.OutputValues"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.output.OutputValues",)

    values: dict[str, Any] = Field(default_factory=dict)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"values": ctx.render(self.values)}


TASKS = [Return, OutputValues]
