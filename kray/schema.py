"""JSON Schemas of the task types, for editors, the UI and documentation.

Each registered task class exports one JSON Schema (draft 2020-12) built from its pydantic
model: properties under their YAML (camelCase) names, ``title`` and ``description`` from the
class and its docstring, ``type`` restricted to the type's name and aliases, and an
``x-kray`` block (``type``, ``aliases``, ``kind``: runnable or flowable, ``plugin``). Child
tasks (``tasks:``, ``then:``...) are described once, as a generic task object (an ``id`` and
a ``type``): each child is checked against its own type's schema.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from kray.registry import ENTRY_POINT_GROUP, PluginRegistry
from kray.task import TASK_ID_PATTERN, FlowableTask, Task

DRAFT = "https://json-schema.org/draft/2020-12/schema"

GENERIC_TASK: dict[str, Any] = {
    "type": "object",
    "title": "Task",
    "description": "A task of any type: its `type` names the schema that applies to it.",
    "properties": {"id": {"type": "string", "pattern": TASK_ID_PATTERN, "maxLength": 100},
                   "type": {"type": "string"}},
    "required": ["id", "type"],
    "additionalProperties": True,
}


@dataclass(frozen=True)
class TaskInfo:
    """One registered task type, as ``kray plugins list`` shows it."""

    name: str
    aliases: tuple[str, ...]
    kind: str  # "runnable" or "flowable"
    plugin: str  # the entry point (or package) that registered it
    summary: str  # the docstring's first line
    cls: type[Task]


def _plugin_modules() -> list[tuple[str, str]]:
    """(module prefix, entry point name) of each ``kray.plugins`` entry point, longest
    prefix first."""
    found = [(ep.value.split(":", 1)[0], ep.name) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda pair: -len(pair[0]))


def plugin_of(cls: type, modules: list[tuple[str, str]] | None = None) -> str:
    """The entry point whose module holds ``cls`` (its package's name when none does)."""
    module = cls.__module__
    for prefix, name in modules if modules is not None else _plugin_modules():
        if module == prefix or module.startswith(prefix + "."):
            return name
    return module.split(".", 1)[0]


def describe(registry: PluginRegistry) -> list[TaskInfo]:
    """Every task type of ``registry`` (canonical names), sorted by type."""
    modules = _plugin_modules()
    out = []
    for name, cls in sorted(registry.canonical().items()):
        doc = inspect.getdoc(cls) or ""
        out.append(TaskInfo(name=name, aliases=tuple(cls.aliases),
                            kind="flowable" if issubclass(cls, FlowableTask) else "runnable",
                            plugin=plugin_of(cls, modules),
                            summary=doc.strip().split("\n\n", 1)[0].replace("\n", " "),
                            cls=cls))
    return out


def _generator(root: type[Task]) -> type[GenerateJsonSchema]:
    class TaskSchemaGenerator(GenerateJsonSchema):
        """Describes every task model but ``root`` as the generic task object."""

        def model_schema(self, schema: Any) -> Any:
            cls = schema.get("cls")
            if isinstance(cls, type) and issubclass(cls, Task) and cls is not root:
                return dict(GENERIC_TASK)
            return super().model_schema(schema)

    return TaskSchemaGenerator


def _strip_titles(node: Any) -> None:
    """Drop pydantic's per-property titles ("Maxattempt"): the property names say it."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for prop in props.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _strip_titles(value)
    elif isinstance(node, list):
        for value in node:
            _strip_titles(value)


def task_schema(cls: type[Task], plugin: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one task class."""
    schema = cls.model_json_schema(by_alias=True, schema_generator=_generator(cls))
    _strip_titles(schema)
    names = [cls.type_name, *cls.aliases]
    properties = schema.setdefault("properties", {})
    properties["type"] = {"type": "string", "enum": names,
                          "description": "This task's type: its name or one of its aliases."}
    doc = inspect.getdoc(cls) or ""
    schema["title"] = cls.type_name.rsplit(".", 1)[-1]
    if doc:
        schema["description"] = doc
    schema["x-kray"] = {
        "type": cls.type_name, "aliases": list(cls.aliases),
        "kind": "flowable" if issubclass(cls, FlowableTask) else "runnable",
        "plugin": plugin if plugin is not None else plugin_of(cls)}
    return {"$schema": DRAFT, "$id": f"kray:task/{cls.type_name}", **schema}


def all_schemas(registry: PluginRegistry) -> dict[str, Any]:
    """Every task type's schema in one document: ``{"tasks": {type: schema}, "aliases":
    {alias: type}}``."""
    tasks: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    for info in describe(registry):
        tasks[info.name] = task_schema(info.cls, info.plugin)
        for alias in info.aliases:
            aliases[alias] = info.name
    return {"$schema": DRAFT, "tasks": tasks, "aliases": aliases}


__all__ = ["GENERIC_TASK", "TaskInfo", "all_schemas", "describe", "plugin_of", "task_schema"]
