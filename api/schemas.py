"""The JSON Schemas the UI's editor completes from: a flow, each task type, each trigger type.

Task schemas are ``kray.schema``'s. The flow's schema describes each task as the generic task
object (an ``id`` and a ``type`` from the list of known types): the editor then completes a
task's properties from ``tasks[type]``, and a trigger's from ``triggers[type]``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from kray.flow.model import Flow
from kray.registry import PluginRegistry
from kray.schema import DRAFT, GENERIC_TASK, all_schemas
from kray.task import Task

log = logging.getLogger("kray.api")

GENERIC_TRIGGER: dict[str, Any] = {
    "type": "object", "title": "Trigger", "required": ["id", "type"],
    "description": "A trigger of any type: its `type` names the schema that applies to it.",
    "properties": {"id": {"type": "string", "pattern": r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"},
                   "type": {"type": "string"}, "disabled": {"type": "boolean"}},
    "additionalProperties": True}


def _generic_generator(task: dict[str, Any], trigger: dict[str, Any]
                       ) -> type[GenerateJsonSchema]:
    from kray.flow.model import Trigger

    class FlowSchemaGenerator(GenerateJsonSchema):
        """Every task model as the generic task, the trigger model as the generic trigger."""

        def model_schema(self, schema: Any) -> Any:
            cls = schema.get("cls")
            if isinstance(cls, type) and issubclass(cls, Task):
                return copy.deepcopy(task)
            if cls is Trigger:
                return copy.deepcopy(trigger)
            return super().model_schema(schema)

    return FlowSchemaGenerator


def flow_schema(task_types: list[str], trigger_types: list[str]) -> dict[str, Any]:
    """A flow's schema; tasks' and triggers' ``type`` list the known names."""
    task = copy.deepcopy(GENERIC_TASK)
    task["properties"]["type"] = {"type": "string", "enum": sorted(task_types)}
    trigger = copy.deepcopy(GENERIC_TRIGGER)
    trigger["properties"]["type"] = {"type": "string", "enum": sorted(trigger_types)}
    schema = Flow.model_json_schema(by_alias=True,
                                    schema_generator=_generic_generator(task, trigger))
    for hidden in ("source", "path"):
        schema.get("properties", {}).pop(hidden, None)
    return {"$schema": DRAFT, "$id": "kray:flow", **schema}


def trigger_schema(name: str, model: type[BaseModel] | None) -> dict[str, Any]:
    schema: dict[str, Any] | None = None
    if model is not None:
        try:
            schema = model.model_json_schema(by_alias=True)
        except Exception as e:  # a model pydantic cannot describe: the generic shape
            log.warning("no JSON Schema for trigger type %s: %s", name, e)
    if schema is None:
        schema = copy.deepcopy(GENERIC_TRIGGER)
    schema.setdefault("properties", {})["type"] = {"type": "string", "enum": [name]}
    return {"$schema": DRAFT, "$id": f"kray:trigger/{name}", **schema}


def all_ui_schemas(registry: PluginRegistry | None = None) -> dict[str, Any]:
    """``{"flow", "tasks": {type: schema}, "triggers": {type: schema}, "aliases"}``."""
    registry = registry or PluginRegistry.default()
    tasks = all_schemas(registry)
    triggers = {name: trigger_schema(name, registry.trigger_model(name))
                for name in sorted(registry.trigger_types())}
    task_names = [*tasks["tasks"], *tasks["aliases"]]
    return {"flow": flow_schema(task_names, list(triggers)), "tasks": tasks["tasks"],
            "triggers": triggers, "aliases": tasks["aliases"]}


__all__ = ["all_ui_schemas", "flow_schema", "trigger_schema"]
