"""The Flow model. Tasks inside it are instances of the registered task classes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from kray.task import Model, Retry, Task

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class ConcurrencyBehavior(StrEnum):
    QUEUE = "QUEUE"  # wait for a slot
    CANCEL = "CANCEL"  # the new execution ends CANCELLED
    FAIL = "FAIL"  # the new execution ends FAILED


class Concurrency(Model):
    limit: int = Field(ge=1)
    behavior: ConcurrencyBehavior = ConcurrencyBehavior.QUEUE


class FlowOutput(Model):
    id: str
    type: str = "STRING"
    value: Any = None
    description: str | None = None
    display_name: str | None = None


class PluginDefault(Model):
    type: str
    values: dict[str, Any] = Field(default_factory=dict)
    forced: bool = False


class Input(Model):
    """One declared input. Type-specific properties are checked by ``kray.flow.inputs``."""

    id: str = Field(pattern=r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")
    type: str
    description: str | None = None
    display_name: str | None = None
    required: bool = True
    defaults: Any = None
    depends_on: dict[str, Any] | None = None
    validator: str | None = None  # STRING/SECRET regex
    min: Any = None
    max: Any = None
    after: Any = None
    before: Any = None
    values: list[Any] | str | None = None  # SELECT / MULTISELECT options
    options: list[Any] | None = None  # older MULTISELECT spelling
    item_type: str | None = None  # ARRAY
    allow_custom_value: bool = False
    is_radio: bool = False
    extension: str | None = None  # FILE
    auto_select_first: bool = False
    prefill: Any = None
    name: str | None = None  # very old spelling of id (ignored when id is set)

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class Trigger(Model):
    """Triggers are run by the server (issue 3); the engine only checks their shape."""

    model_config = {**Model.model_config, "extra": "allow"}

    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    type: str
    disabled: bool = False


class Flow(Model):
    id: str = Field(pattern=FLOW_ID_PATTERN, max_length=100)
    namespace: str = Field(pattern=NAMESPACE_PATTERN, max_length=150)
    revision: int | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[Input] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    after_execution: list[Task] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    concurrency: Concurrency | None = None
    retry: Retry | None = None
    outputs: list[FlowOutput] = Field(default_factory=list)
    plugin_defaults: list[PluginDefault] = Field(default_factory=list)
    disabled: bool = False
    deleted: bool = False
    tenant_id: str | None = None
    sla: list[dict[str, Any]] | None = None
    worker_group: dict[str, Any] | None = None
    checks: list[dict[str, Any]] | None = None
    # Where this flow came from (not part of the language; set by the loader).
    source: str | None = Field(default=None, exclude=True)
    path: str | None = Field(default=None, exclude=True)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        # Kestra accepts a map or a list of {key, value}.
        if isinstance(v, list):
            out = {}
            for item in v:
                if not isinstance(item, dict) or "key" not in item:
                    raise ValueError("a label list item must be {key, value}")
                out[str(item["key"])] = str(item.get("value", ""))
            return out
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v

    @property
    def uid(self) -> str:
        return f"{self.namespace}/{self.id}"

    def all_tasks(self) -> list[Task]:
        from kray.task import iter_tasks
        return [*iter_tasks(self.tasks), *iter_tasks(self.errors), *iter_tasks(self.finally_),
                *iter_tasks(self.after_execution)]

