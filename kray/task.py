"""What a task is: the plugin author's surface.

Two kinds, as in Kestra:

* ``RunnableTask``: ``run(ctx) -> dict`` of outputs, executed on a Ray worker.
* ``FlowableTask``: decides which child task runs come next and what state it ends in. It runs
  inside the executor's pure core: no I/O, no clock, no Ray.

A task class is a strict pydantic model (``extra="forbid"``): its fields are the YAML properties,
written in camelCase in YAML (``allow_failure`` <- ``allowFailure``). String properties are
templates; a runnable task renders the ones it uses with ``ctx.render(...)``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from kray.context import RunContext
    from kray.engine.execution import TaskRun
    from kray.engine.scope import Scope
    from kray.engine.state import State

TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


class Model(BaseModel):
    """Base of every flow-language model: strict, camelCase in YAML, snake_case in Python."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              arbitrary_types_allowed=True, protected_namespaces=(),
                              coerce_numbers_to_str=True)  # `message: 123` is fine, as in Kestra


class RetryBehavior(StrEnum):
    RETRY_FAILED_TASK = "RETRY_FAILED_TASK"  # a new attempt of the same task run
    CREATE_NEW_EXECUTION = "CREATE_NEW_EXECUTION"  # the execution is RETRIED, a new one starts


class Retry(Model):
    """``retry:`` on a task, a flowable or the flow. Types: constant, exponential, random."""

    type: Literal["constant", "exponential", "random"]
    max_attempt: int | None = Field(None, ge=1)  # total attempts, the first one included
    max_duration: timedelta | None = None
    interval: timedelta | None = None
    max_interval: timedelta | None = None
    min_interval: timedelta | None = None
    delay_factor: float | None = None
    warning_on_retry: bool = False
    behavior: RetryBehavior = RetryBehavior.RETRY_FAILED_TASK

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class Resources(Model):
    """**kray**: what the task's Ray worker needs. Extra keys are custom Ray resources."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    cpu: float | None = Field(None, ge=0)
    gpu: float | None = Field(None, ge=0)
    memory: int | str | None = None  # bytes, or "512Mi", "2Gi", "1GB"


class Task(Model):
    """Properties every task has. Subclasses set ``type_name`` and ``aliases``."""

    type_name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    id: str = Field(pattern=TASK_ID_PATTERN, max_length=100)
    type: str
    description: str | None = None
    disabled: bool = False
    timeout: timedelta | None = None
    retry: Retry | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    run_if: str | bool | None = None
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"] | None = None
    resources: Resources | None = None
    runtime_env: dict[str, Any] | None = None
    worker_group: dict[str, Any] | None = None  # accepted for Kestra compatibility, unused

    @property
    def is_flowable(self) -> bool:
        return isinstance(self, FlowableTask)


class RunnableTask(Task):
    """A task that runs on a worker. Override ``run``."""

    def run(self, ctx: RunContext) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class FlowableTask(Task):
    """A task that orchestrates children inside the executor. Override both methods."""

    pauses: ClassVar[bool] = False  # it may put its run (and the execution) in PAUSED
    groups_children: ClassVar[bool] = False  # its runnable children share one worker

    def child_lists(self) -> list[list[Task]]:
        """Every list of direct children (tasks, then, else, errors, finally...), for indexing
        and validation (task ids are unique across the whole flow)."""
        raise NotImplementedError

    def advance(self, scope: Scope, run: TaskRun) -> State | None:
        """Create the next child task runs through ``scope``; return the terminal state once
        this task run is done, or None while it is still in progress. Must be idempotent: it is
        called again after every change below it."""
        raise NotImplementedError


def iter_tasks(tasks: list[Task]):
    """Every task in a tree, depth first."""
    for t in tasks:
        yield t
        if isinstance(t, FlowableTask):
            for lst in t.child_lists():
                yield from iter_tasks(lst)
