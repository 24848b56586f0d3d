"""Trigger conditions: strict models, each with a pure ``test(ctx)``.

A condition never reads a clock: the date it looks at is the tick (schedules) or the moment
the event arrived, passed in ``ConditionContext.date``, or the rendered ``date`` property.
Conditions about an execution (``Execution*``) look at the execution that ended, which only
Flow triggers have.

Type names: ``kray.core.condition.<Name>``, Kestra's ``io.kestra.plugin.core.condition.<Name>``
and its older ``io.kestra.core.models.conditions.types.<Name>Condition``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timezone
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Discriminator, Field, Tag, field_validator

from kray.engine.state import State
from kray.errors import KrayError
from kray.task import Model


class ConditionError(KrayError):
    """A condition cannot be evaluated (no execution to look at, a date that is no date)."""


@dataclass
class ConditionContext:
    """What a condition may look at."""

    date: datetime  # the tick of a schedule, else when the event happened (aware)
    variables: Mapping[str, Any] = field(default_factory=dict)  # trigger, flow, execution
    evaluate: Callable[[str, Mapping[str, Any]], Any] | None = None  # a template's value
    execution: Mapping[str, Any] | None = None  # the execution that ended (Flow triggers)

    def value(self, template: str) -> Any:
        if self.evaluate is None:
            raise ConditionError("this condition needs templates, and none can be rendered here")
        return self.evaluate(template, self.variables)

    def date_of(self, template: str | None) -> datetime:
        """The condition's ``date`` property rendered, or the context's date."""
        return self.date if template is None else as_datetime(self.value(template))

    def ended(self) -> Mapping[str, Any]:
        if self.execution is None:
            raise ConditionError("an Execution condition needs an execution: only Flow "
                                 "triggers have one")
        return self.execution


def as_datetime(value: Any) -> datetime:
    """A datetime from a datetime, a date or an ISO-8601 string; naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConditionError(f"'{value}' is not an ISO-8601 date") from None
    else:
        raise ConditionError(f"{value!r} is not a date")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        return list(DayOfWeek).index(self)


class DayInMonth(StrEnum):
    FIRST = "FIRST"
    SECOND = "SECOND"
    THIRD = "THIRD"
    FOURTH = "FOURTH"
    LAST = "LAST"


class Comparison(StrEnum):
    EQUALS = "EQUALS"
    PREFIX = "PREFIX"
    SUFFIX = "SUFFIX"


class Condition(Model):
    """Base of the condition models. ``type`` is checked by the union's discriminator."""

    type: str
    needs_execution: ClassVar[bool] = False

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError


def _labels(value: Any) -> Any:
    # Kestra accepts a map or a list of {key, value}.
    if isinstance(value, list):
        return {str(i.get("key")): str(i.get("value", "")) for i in value if isinstance(i, dict)}
    return value


class ExecutionStatus(Condition):
    """The execution ended in one of ``in`` and in none of ``notIn``."""

    needs_execution: ClassVar[bool] = True
    in_: list[State] = Field(default_factory=list, alias="in")
    not_in: list[State] = Field(default_factory=list)

    def test(self, ctx: ConditionContext) -> bool:
        state = State(ctx.ended()["state"])
        return (not self.in_ or state in self.in_) and state not in self.not_in


class ExecutionFlow(Condition):
    """The execution belongs to this flow."""

    needs_execution: ClassVar[bool] = True
    namespace: str
    flow_id: str

    def test(self, ctx: ConditionContext) -> bool:
        ex = ctx.ended()
        return ex["namespace"] == self.namespace and ex["flowId"] == self.flow_id


class ExecutionNamespace(Condition):
    """The execution's namespace equals (or starts or ends with) ``namespace``."""

    needs_execution: ClassVar[bool] = True
    namespace: str
    comparison: Comparison | None = None
    prefix: bool = False  # Kestra's older spelling of comparison: PREFIX

    def test(self, ctx: ConditionContext) -> bool:
        ns = str(ctx.ended()["namespace"])
        how = self.comparison or (Comparison.PREFIX if self.prefix else Comparison.EQUALS)
        if how is Comparison.PREFIX:
            return ns.startswith(self.namespace)
        if how is Comparison.SUFFIX:
            return ns.endswith(self.namespace)
        return ns == self.namespace


class ExecutionLabels(Condition):
    """The execution has every one of these labels."""

    needs_execution: ClassVar[bool] = True
    labels: dict[str, str]

    @field_validator("labels", mode="before")
    @classmethod
    def _label_list(cls, v: Any) -> Any:
        return _labels(v)

    def test(self, ctx: ConditionContext) -> bool:
        have = ctx.ended().get("labels") or {}
        return all(k in have and str(have[k]) == v for k, v in self.labels.items())


class ExecutionOutputs(Condition):
    """An expression over the ended execution's outputs (``trigger.outputs``) is true."""

    needs_execution: ClassVar[bool] = True
    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        from kray.templating import is_truthy
        ctx.ended()
        return bool(is_truthy(ctx.value(self.expression)))


class Expression(Condition):
    """A template expression is true (``{{ trigger.body.kind == 'push' }}``)."""

    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        from kray.templating import is_truthy
        return bool(is_truthy(ctx.value(self.expression)))


class DayWeek(Condition):
    """The date falls on this day of the week."""

    date: str | None = None
    day_of_week: DayOfWeek

    def test(self, ctx: ConditionContext) -> bool:
        return ctx.date_of(self.date).weekday() == self.day_of_week.weekday


class DayWeekInMonth(Condition):
    """The date is the first (second, ..., last) given weekday of its month."""

    date: str | None = None
    day_of_week: DayOfWeek
    day_in_month: DayInMonth

    def test(self, ctx: ConditionContext) -> bool:
        moment = ctx.date_of(self.date)
        if moment.weekday() != self.day_of_week.weekday:
            return False
        if self.day_in_month is DayInMonth.LAST:
            return (moment.day + 7) > _days_in_month(moment)
        return (moment.day - 1) // 7 == list(DayInMonth).index(self.day_in_month)


def _days_in_month(moment: datetime) -> int:
    first_next = date(moment.year + moment.month // 12, moment.month % 12 + 1, 1)
    return (first_next - date(moment.year, moment.month, 1)).days


class Weekend(Condition):
    """The date is a Saturday or a Sunday."""

    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        return ctx.date_of(self.date).weekday() >= 5


class TimeBetween(Condition):
    """The date's time of day is at or after ``after`` and before ``before`` (either may be
    left out). A time with an offset is compared on that offset's clock, one without on the
    date's own."""

    date: str | None = None
    after: time | None = None
    before: time | None = None

    def test(self, ctx: ConditionContext) -> bool:
        moment = ctx.date_of(self.date)
        return ((self.after is None or _clock(moment, self.after) >= _naive(self.after))
                and (self.before is None or _clock(moment, self.before) < _naive(self.before)))


def _clock(moment: datetime, ref: time) -> time:
    offset = ref.utcoffset() if ref.tzinfo is not None else None
    if offset is not None:
        moment = moment.astimezone(timezone(offset))
    return moment.time()


def _naive(t: time) -> time:
    return t.replace(tzinfo=None)


class DateTimeBetween(Condition):
    """The date is at or after ``after`` and before ``before`` (either may be left out)."""

    date: str | None = None
    after: datetime | None = None
    before: datetime | None = None

    def test(self, ctx: ConditionContext) -> bool:
        moment = ctx.date_of(self.date)
        return ((self.after is None or moment >= as_datetime(self.after))
                and (self.before is None or moment < as_datetime(self.before)))


class Not(Condition):
    """None of ``conditions`` is true."""

    conditions: list[AnyCondition] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        return not any(c.test(ctx) for c in self.conditions)


class Or(Condition):
    """At least one of ``conditions`` is true."""

    conditions: list[AnyCondition] = Field(min_length=1)

    def test(self, ctx: ConditionContext) -> bool:
        return any(c.test(ctx) for c in self.conditions)


CONDITION_CLASSES: tuple[type[Condition], ...] = (
    ExecutionStatus, ExecutionFlow, ExecutionNamespace, ExecutionLabels, ExecutionOutputs,
    Expression, DayWeek, DayWeekInMonth, Weekend, TimeBetween, DateTimeBetween, Not, Or)

#: Every accepted type name -> its class.
CONDITION_TYPES: dict[str, type[Condition]] = {}
for _cls in CONDITION_CLASSES:
    _name = _cls.__name__
    for _full in (f"kray.core.condition.{_name}", f"io.kestra.plugin.core.condition.{_name}",
                  f"io.kestra.plugin.core.condition.{_name}Condition",
                  f"io.kestra.core.models.conditions.types.{_name}Condition"):
        CONDITION_TYPES[_full] = _cls


def _tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    cls = CONDITION_TYPES.get(kind) if isinstance(kind, str) else None
    return cls.__name__ if cls is not None else None


_NAMES = ", ".join(c.__name__ for c in CONDITION_CLASSES)

AnyCondition = Annotated[
    Annotated[ExecutionStatus, Tag("ExecutionStatus")]
    | Annotated[ExecutionFlow, Tag("ExecutionFlow")]
    | Annotated[ExecutionNamespace, Tag("ExecutionNamespace")]
    | Annotated[ExecutionLabels, Tag("ExecutionLabels")]
    | Annotated[ExecutionOutputs, Tag("ExecutionOutputs")]
    | Annotated[Expression, Tag("Expression")]
    | Annotated[DayWeek, Tag("DayWeek")]
    | Annotated[DayWeekInMonth, Tag("DayWeekInMonth")]
    | Annotated[Weekend, Tag("Weekend")]
    | Annotated[TimeBetween, Tag("TimeBetween")]
    | Annotated[DateTimeBetween, Tag("DateTimeBetween")]
    | Annotated[Not, Tag("Not")]
    | Annotated[Or, Tag("Or")],
    Discriminator(_tag, custom_error_type="condition_type",
                  custom_error_message=f"unknown condition type; use one of {_NAMES} "
                                       "(as kray.core.condition.<Name> or "
                                       "io.kestra.plugin.core.condition.<Name>)",
                  custom_error_context={"discriminator": "type"}),
]

Not.model_rebuild()
Or.model_rebuild()


def needs_execution(conditions: Sequence[Condition]) -> bool:
    """Whether any of these conditions (or one nested in Not/Or) looks at an execution."""
    for c in conditions:
        if c.needs_execution or (isinstance(c, (Not, Or)) and needs_execution(c.conditions)):
            return True
    return False


def all_true(conditions: Sequence[Condition], ctx: ConditionContext) -> bool:
    """Every condition holds (Kestra: a trigger's conditions are ANDed)."""
    return all(c.test(ctx) for c in conditions)


__all__ = [
    "CONDITION_TYPES",
    "AnyCondition",
    "Condition",
    "ConditionContext",
    "ConditionError",
    "all_true",
    "as_datetime",
    "needs_execution",
]
