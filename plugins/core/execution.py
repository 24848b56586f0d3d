"""Tasks that act on the execution they run in: ``Fail``, ``Exit``, ``Labels``.

``Exit`` and ``Labels`` do not change the execution themselves: they record an effect in
``ctx.effects`` and the executor applies it when it receives the task run's result.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from kray.errors import TaskError
from kray.task import RunnableTask
from kray.templating import is_truthy

if TYPE_CHECKING:
    from kray.context import RunContext


class Fail(RunnableTask):
    """Fail the task run with ``errorMessage``: always, or only when ``condition`` renders
    to something truthy (``"false"``, ``"0"``, ``""`` and null are false)."""

    type_name: ClassVar[str] = "kray.core.execution.Fail"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.execution.Fail",
                                          "io.kestra.core.tasks.executions.Fail")

    condition: str | bool | None = None
    error_message: str = "Task failure"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.condition is not None and not is_truthy(ctx.render(self.condition)):
            return {}
        raise TaskError(ctx.render_str(self.error_message))


class Exit(RunnableTask):
    """End the whole execution now, in ``state`` (default SUCCESS).

    Sets ``ctx.effects["exit"]``; the executor stops scheduling new task runs and ends the
    execution in that state. ``CANCELED`` (Kestra's spelling) means ``CANCELLED``.
    """

    type_name: ClassVar[str] = "kray.core.execution.Exit"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.execution.Exit",)

    state: Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELED", "CANCELLED"] = "SUCCESS"

    @field_validator("state", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    def run(self, ctx: RunContext) -> dict[str, Any]:
        ctx.effects["exit"] = "CANCELLED" if self.state == "CANCELED" else self.state
        return {}


class Labels(RunnableTask):
    """Add (or overwrite) labels on the current execution.

    ``labels`` is a map, a list of ``{key, value}``, or a template rendering to either (as
    JSON). Keys and values are rendered; values become strings. Sets ``ctx.effects["labels"]``.
    """

    type_name: ClassVar[str] = "kray.core.execution.Labels"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.plugin.core.execution.Labels",
                                          "io.kestra.core.tasks.executions.Labels")

    labels: dict[str, Any] | list[dict[str, Any]] | str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render(self.labels)
        if isinstance(rendered, str):
            try:
                rendered = json.loads(rendered)
            except ValueError:
                raise TaskError("labels must render to a map or a list of {key, value}, "
                                f"got: {rendered!r}") from None
        labels = _as_mapping(rendered)
        merged = dict(ctx.effects.get("labels") or {})
        merged.update(labels)
        ctx.effects["labels"] = merged
        return {}


def _as_mapping(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        pairs = [(k, v) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, dict) or "key" not in item or "value" not in item:
                raise TaskError(f"each label in a list must be {{key, value}}, got: {item!r}")
            pairs.append((item["key"], item["value"]))
    else:
        raise TaskError(f"labels must be a map or a list of {{key, value}}, got: {value!r}")
    out: dict[str, str] = {}
    for key, val in pairs:
        key = "" if key is None else str(key).strip()
        if not key:
            raise TaskError("a label key must not be empty")
        out[key] = _label_value(val)
    return out


def _label_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


TASKS = [Fail, Exit, Labels]
