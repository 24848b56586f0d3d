"""Every trigger condition type, evaluated purely (the real template engine, a fixed date)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from kray.templating import TemplateEngine
from kray.triggers.conditions import (
    CONDITION_TYPES,
    AnyCondition,
    ConditionContext,
    ConditionError,
    all_true,
)

CONDITIONS = TypeAdapter(list[AnyCondition])
ENGINE = TemplateEngine()
FRIDAY_NOON = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
ENDED = {"id": "e1", "namespace": "company.team.sales", "flowId": "etl", "state": "SUCCESS",
         "labels": {"env": "prod", "team": "data"}, "outputs": {"rows": 42}}


def check(condition: dict[str, Any], *, date: datetime = FRIDAY_NOON,
          ended: dict[str, Any] | None = ENDED, variables: dict[str, Any] | None = None) -> bool:
    (parsed,) = CONDITIONS.validate_python([condition])
    scope = variables or {"trigger": {"date": date.isoformat(), "outputs": ENDED["outputs"],
                                      "body": {"kind": "push"}}}
    return parsed.test(ConditionContext(date, scope, ENGINE.evaluate, ended))


def kestra(name: str) -> str:
    return f"io.kestra.plugin.core.condition.{name}"


def test_every_type_has_kray_kestra_and_older_names() -> None:
    for name in ("ExecutionStatus", "ExecutionFlow", "ExecutionNamespace", "ExecutionLabels",
                 "Expression", "DayWeek", "TimeBetween", "Weekend", "Not", "Or"):
        assert {CONDITION_TYPES[f"kray.core.condition.{name}"], CONDITION_TYPES[kestra(name)],
                CONDITION_TYPES[f"io.kestra.core.models.conditions.types.{name}Condition"]} \
            == {CONDITION_TYPES[kestra(name)]}


def test_execution_status() -> None:
    assert check({"type": kestra("ExecutionStatus"), "in": ["SUCCESS", "WARNING"]})
    assert not check({"type": kestra("ExecutionStatus"), "in": ["FAILED"]})
    assert not check({"type": kestra("ExecutionStatus"), "notIn": ["SUCCESS"]})
    assert check({"type": kestra("ExecutionStatus"), "notIn": ["FAILED"]})


def test_execution_flow() -> None:
    assert check({"type": kestra("ExecutionFlow"), "namespace": "company.team.sales",
                  "flowId": "etl"})
    assert not check({"type": kestra("ExecutionFlow"), "namespace": "company.team",
                      "flowId": "etl"})


@pytest.mark.parametrize("props,expected", [
    ({"namespace": "company.team.sales"}, True),
    ({"namespace": "company.team"}, False),
    ({"namespace": "company.team", "comparison": "PREFIX"}, True),
    ({"namespace": "company.team", "prefix": True}, True),
    ({"namespace": ".sales", "comparison": "SUFFIX"}, True),
    ({"namespace": "other", "comparison": "PREFIX"}, False),
])
def test_execution_namespace(props: dict[str, Any], expected: bool) -> None:
    assert check({"type": kestra("ExecutionNamespace"), **props}) is expected


def test_execution_labels_map_or_list() -> None:
    assert check({"type": kestra("ExecutionLabels"), "labels": {"env": "prod"}})
    assert check({"type": kestra("ExecutionLabels"),
                  "labels": [{"key": "env", "value": "prod"}, {"key": "team", "value": "data"}]})
    assert not check({"type": kestra("ExecutionLabels"), "labels": {"env": "dev"}})
    assert not check({"type": kestra("ExecutionLabels"), "labels": {"owner": "prod"}})


def test_execution_outputs() -> None:
    assert check({"type": kestra("ExecutionOutputs"),
                  "expression": "{{ trigger.outputs.rows > 40 }}"})
    assert not check({"type": kestra("ExecutionOutputs"),
                      "expression": "{{ trigger.outputs.rows > 50 }}"})


def test_expression() -> None:
    expression = {"type": kestra("Expression")}
    assert check({**expression, "expression": "{{ trigger.body.kind == 'push' }}"})
    assert not check({**expression, "expression": "{{ trigger.body.kind == 'pr' }}"})


@pytest.mark.parametrize("day,expected", [("FRIDAY", True), ("MONDAY", False)])
def test_day_week(day: str, expected: bool) -> None:
    assert check({"type": kestra("DayWeek"), "dayOfWeek": day}) is expected
    assert check({"type": kestra("DayWeek"), "dayOfWeek": day,
                  "date": "{{ trigger.date }}"}) is expected


@pytest.mark.parametrize("date,day,which,expected", [
    (datetime(2024, 5, 3, tzinfo=UTC), "FRIDAY", "FIRST", True),
    (datetime(2024, 5, 10, tzinfo=UTC), "FRIDAY", "SECOND", True),
    (datetime(2024, 5, 31, tzinfo=UTC), "FRIDAY", "LAST", True),
    (datetime(2024, 5, 24, tzinfo=UTC), "FRIDAY", "LAST", False),
    (datetime(2024, 5, 24, tzinfo=UTC), "FRIDAY", "FOURTH", True),
    (datetime(2024, 5, 3, tzinfo=UTC), "MONDAY", "FIRST", False),
])
def test_day_week_in_month(date: datetime, day: str, which: str, expected: bool) -> None:
    assert check({"type": kestra("DayWeekInMonth"), "dayOfWeek": day, "dayInMonth": which},
                 date=date) is expected


def test_weekend() -> None:
    assert not check({"type": kestra("Weekend")})
    assert check({"type": kestra("Weekend")}, date=datetime(2024, 5, 4, tzinfo=UTC))
    assert check({"type": kestra("Weekend"), "date": "2024-05-05T08:00:00+02:00"})


@pytest.mark.parametrize("props,expected", [
    ({"after": "09:00:00", "before": "17:00:00"}, True),
    ({"after": "12:00:00"}, True),  # after is inclusive
    ({"before": "12:00:00"}, False),  # before is exclusive
    ({"after": "13:00:00"}, False),
    ({"after": "13:30:00+02:00"}, True),  # 12:00 UTC is 14:00 at +02:00
])
def test_time_between(props: dict[str, Any], expected: bool) -> None:
    assert check({"type": kestra("TimeBetween"), **props}) is expected


def test_date_time_between() -> None:
    assert check({"type": kestra("DateTimeBetween"), "after": "2024-05-01T00:00:00Z",
                  "before": "2024-06-01T00:00:00Z"})
    assert not check({"type": kestra("DateTimeBetween"), "after": "2024-05-04T00:00:00Z"})


def test_not_and_or_nest() -> None:
    weekend = {"type": kestra("Weekend")}
    friday = {"type": kestra("DayWeek"), "dayOfWeek": "FRIDAY"}
    assert check({"type": kestra("Not"), "conditions": [weekend]})
    assert not check({"type": kestra("Not"), "conditions": [weekend, friday]})
    assert check({"type": kestra("Or"), "conditions": [weekend, friday]})
    assert not check({"type": "kray.core.condition.Or",
                      "conditions": [weekend, {"type": kestra("Not"), "conditions": [friday]}]})


def test_conditions_are_anded() -> None:
    parsed = CONDITIONS.validate_python([
        {"type": kestra("DayWeek"), "dayOfWeek": "FRIDAY"}, {"type": kestra("Weekend")}])
    assert not all_true(parsed, ConditionContext(FRIDAY_NOON))
    assert all_true([], ConditionContext(FRIDAY_NOON))


def test_execution_conditions_need_an_execution() -> None:
    with pytest.raises(ConditionError, match="only Flow triggers have one"):
        check({"type": kestra("ExecutionStatus"), "in": ["SUCCESS"]}, ended=None)


def test_a_bad_date_is_a_condition_error() -> None:
    with pytest.raises(ConditionError, match="not an ISO-8601 date"):
        check({"type": kestra("Weekend"), "date": "yesterday"})


def test_typos_and_unknown_types_fail_validation() -> None:
    with pytest.raises(ValidationError) as caught:
        CONDITIONS.validate_python([{"type": kestra("DayWeek"), "dayOfWek": "MONDAY"},
                                    {"type": "acme.Nope"}])
    kinds = {(e["type"], e["loc"][-1]) for e in caught.value.errors()}
    assert ("extra_forbidden", "dayOfWek") in kinds
    assert ("condition_type", 1) in kinds
