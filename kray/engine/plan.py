"""A flow compiled for execution: task index, parent links, and what each task's templates
reference. Built once per flow revision and cached by the executor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from kray.flow.model import Flow
from kray.task import FlowableTask, Task

# `outputs.t1`, `outputs['t1']`, `outputs["t1"]`: the task ids a template reads outputs of.
_OUTPUT_REF = re.compile(r"""outputs\s*(?:\.\s*([A-Za-z0-9_]+)|\[\s*['"]([^'"]+)['"]\s*\])""")
_ANY_OUTPUT = re.compile(r"\boutputs\b")


class Renderer(Protocol):
    """The template engine as the core uses it (``kray.templating.TemplateEngine``)."""

    def render(self, template: str, variables: Any, services: Any = None) -> str: ...
    def render_value(self, value: Any, variables: Any, services: Any = None) -> Any: ...
    def evaluate(self, template: str, variables: Any, services: Any = None) -> Any: ...


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def output_refs(task: Task) -> frozenset[str] | None:
    """Task ids whose outputs this task's templates read, or None when it may read any (a
    dynamic ``outputs[x]``). Lets the executor ship a worker only the outputs it needs."""
    refs: set[str] = set()
    data = task.model_dump(by_alias=True, exclude_none=True)
    for s in _strings(data):
        if "outputs" not in s:
            continue
        found = _OUTPUT_REF.findall(s)
        if len(found) != len(_ANY_OUTPUT.findall(s)):
            return None
        refs.update(a or b for a, b in found)
    return frozenset(refs)


@dataclass
class Plan:
    flow: Flow
    renderer: Renderer
    tasks: dict[str, Task] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)  # task id -> flowable id
    refs: dict[str, frozenset[str] | None] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)
    globals: dict[str, Any] = field(default_factory=dict)
    has_pause: bool = False

    @classmethod
    def compile(cls, flow: Flow, renderer: Renderer, *, envs: dict[str, str] | None = None,
                globals: dict[str, Any] | None = None) -> Plan:
        plan = cls(flow, renderer, envs=dict(envs or {}), globals=dict(globals or {}))

        def walk(tasks: list[Task], parent: str | None) -> None:
            for t in tasks:
                plan.tasks[t.id] = t
                plan.parents[t.id] = parent
                if isinstance(t, FlowableTask):
                    for lst in t.child_lists():
                        walk(lst, t.id)
                else:
                    plan.refs[t.id] = output_refs(t)

        for lst in (flow.tasks, flow.errors, flow.finally_, flow.after_execution):
            walk(lst, None)
        plan.has_pause = any(getattr(t, "pauses", False) for t in plan.tasks.values())
        return plan

    def ancestors(self, task_id: str):
        """Flowable tasks above ``task_id``, closest first."""
        parent = self.parents.get(task_id)
        while parent is not None:
            yield self.tasks[parent]
            parent = self.parents.get(parent)
