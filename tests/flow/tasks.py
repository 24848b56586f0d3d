"""Small task types for the flow tests, registered on a fresh registry (not the core ones)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kray.flow.model import Input
from kray.registry import PluginRegistry
from kray.task import FlowableTask, Model, RunnableTask, Task


class Echo(RunnableTask):
    type_name: ClassVar[str] = "test.core.Echo"
    aliases: ClassVar[tuple[str, ...]] = ("io.test.plugin.core.Echo",)

    message: str
    level: str = "INFO"
    options: dict[str, Any] | None = None

    def run(self, ctx: Any) -> dict[str, Any]:
        return {}


class Shout(RunnableTask):
    type_name: ClassVar[str] = "test.core.Shout"

    text: str
    loud: bool = False

    def run(self, ctx: Any) -> dict[str, Any]:
        return {}


class Group(FlowableTask):
    type_name: ClassVar[str] = "test.flow.Group"
    aliases: ClassVar[tuple[str, ...]] = ("io.test.plugin.flow.Group",)

    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, self.errors]


class Choose(FlowableTask):
    type_name: ClassVar[str] = "test.flow.Choose"

    value: str
    cases: dict[str, list[Task]] = Field(default_factory=dict)
    defaults: list[Task] = Field(default_factory=list)

    def child_lists(self) -> list[list[Task]]:
        return [*self.cases.values(), self.defaults]


class Node(Model):
    task: Task
    depends_on: list[str] = Field(default_factory=list)


class Graph(FlowableTask):
    type_name: ClassVar[str] = "test.flow.Graph"

    tasks: list[Node] = Field(min_length=1)

    def child_lists(self) -> list[list[Task]]:
        return [[n.task for n in self.tasks]]


class Wrap(FlowableTask):
    type_name: ClassVar[str] = "test.flow.Wrap"

    task: Task | None = None

    def child_lists(self) -> list[list[Task]]:
        return [[self.task]] if self.task else []


class Hold(FlowableTask):
    """Declares inputs given on resume, like a Pause's ``onResume``."""

    type_name: ClassVar[str] = "test.flow.Hold"

    on_resume: list[Input] = Field(default_factory=list)

    def child_lists(self) -> list[list[Task]]:
        return []


TEST_TASKS: list[type[Task]] = [Echo, Shout, Group, Choose, Graph, Wrap, Hold]


def make_registry() -> PluginRegistry:
    registry = PluginRegistry()
    for cls in TEST_TASKS:
        registry.register(cls)
    return registry
