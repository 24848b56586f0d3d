"""The built-in trigger types as strict models (``extra="forbid"``: a typo fails at deploy).

``kray.flow.parse`` checks a trigger's ``type`` and ``id``; the registry then hands the whole
trigger to the model registered for its type (``PluginRegistry.trigger_model``), so every
property is validated, located, with the rest of the flow.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from kray.engine.state import TERMINAL, State
from kray.task import Model
from kray.triggers.conditions import AnyCondition, needs_execution
from kray.triggers.preconditions import Preconditions
from kray.triggers.schedule import Cron, Recover

# A Flow trigger's default states: every terminal one but RETRIED (its retry carries on).
DEFAULT_FLOW_STATES: tuple[State, ...] = tuple(
    s for s in State if s in TERMINAL and s is not State.RETRIED)


def _names(short: str) -> tuple[str, ...]:
    return (f"kray.core.trigger.{short}", f"io.kestra.plugin.core.trigger.{short}",
            f"io.kestra.core.models.triggers.types.{short}")


class TriggerBase(Model):
    """What every trigger has."""

    kind: ClassVar[str] = ""

    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
    type: str
    description: str | None = None
    disabled: bool = False
    conditions: list[AnyCondition] = Field(default_factory=list)
    stop_after: list[State] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("labels", mode="before")
    @classmethod
    def _label_list(cls, v: Any) -> Any:
        if isinstance(v, list):  # Kestra also accepts [{key, value}]
            return {str(i.get("key")): str(i.get("value", "")) for i in v if isinstance(i, dict)}
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v

    def _no_execution_conditions(self) -> None:
        if needs_execution(self.conditions):
            raise ValueError(f"Execution conditions need an execution that ended: only Flow "
                             f"triggers have one, not {self.kind} triggers")


class ScheduleTrigger(TriggerBase):
    """``cron`` ticks on the clock of ``timezone``; one execution per tick."""

    kind: ClassVar[str] = "Schedule"

    with_seconds: bool = False
    timezone: str = "UTC"
    cron: str
    late_maximum_delay: timedelta | None = None
    recover_missed_schedules: Recover = Recover.ALL

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        Cron("@daily", v)  # raises a readable ValueError
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str, info: ValidationInfo) -> str:
        Cron(v, with_seconds=bool(info.data.get("with_seconds")))
        return v

    @model_validator(mode="after")
    def _check(self) -> ScheduleTrigger:
        self._no_execution_conditions()
        return self

    @cached_property
    def schedule(self) -> Cron:
        return Cron(self.cron, self.timezone, self.with_seconds)

    def fingerprint(self) -> str:
        """What, when it changes, makes past ticks meaningless (the trigger starts afresh)."""
        return f"{self.cron}|{self.timezone}|{self.with_seconds}"


class FlowTrigger(TriggerBase):
    """Starts an execution when another flow's execution ends (``states``, ``conditions``),
    or once every flow in ``preconditions`` has."""

    kind: ClassVar[str] = "Flow"

    states: list[State] = Field(default_factory=lambda: list(DEFAULT_FLOW_STATES))
    preconditions: Preconditions | None = None


class WebhookTrigger(TriggerBase):
    """Starts an execution on ``/api/v1/executions/webhook/{namespace}/{flowId}/{key}``."""

    kind: ClassVar[str] = "Webhook"

    key: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _check(self) -> WebhookTrigger:
        self._no_execution_conditions()
        return self


class EventTrigger(TriggerBase):
    """A realtime or polling trigger: a long-lived trigger actor (``kray.triggers.actor``)
    runs its ``Source`` (``kray.triggers.sources``) and starts one execution per event.

    ``maxInFlight`` (kray's) bounds how many of its executions may wait or run at once: at
    that many, the actor stops pulling and the rest waits in the broker."""

    kind: ClassVar[str] = "Event"

    max_in_flight: int = Field(default=100, ge=1, le=100_000)

    #: Fields (Python names) the runtime does not render before the actor gets them: templates
    #: the source renders itself, per event, with the event as data.
    unrendered: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_execution(self) -> EventTrigger:
        self._no_execution_conditions()
        return self


class PollingTrigger(EventTrigger):
    """An ``EventTrigger`` that looks every ``interval`` (ISO-8601, e.g. ``PT30S``)."""

    interval: timedelta = timedelta(seconds=60)

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("interval must be positive")
        return v


AnyTrigger = ScheduleTrigger | FlowTrigger | WebhookTrigger

#: Every built-in trigger type name -> its model.
TRIGGER_MODELS: dict[str, type[TriggerBase]] = {
    name: model for model in (ScheduleTrigger, FlowTrigger, WebhookTrigger)
    for name in _names(model.kind)}


def builtin_trigger_models() -> dict[str, type[BaseModel]]:
    """The executor's own trigger types (plugins register the realtime and polling ones)."""
    return dict(TRIGGER_MODELS)


def parse_trigger(trigger: Any) -> TriggerBase | None:
    """The typed model of a flow's trigger (``kray.flow.model.Trigger``), or None for a type
    the scheduler does not run (a plugin's). Raises pydantic's ``ValidationError``."""
    from kray.triggers.sources import source_types
    model: type[TriggerBase] | None = TRIGGER_MODELS.get(trigger.type)
    if model is None:
        kind = source_types().get(trigger.type)
        model = kind.model if kind is not None else None
    if model is None:
        return None
    data = {"id": trigger.id, "type": trigger.type, "disabled": trigger.disabled,
            **(trigger.model_extra or {})}
    return model.model_validate(data)
