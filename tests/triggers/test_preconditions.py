"""Flow-trigger preconditions: every upstream flow, within a time window, progress kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kray.triggers.preconditions import Preconditions, advance, window

T = datetime(2024, 5, 3, 10, 0, tzinfo=UTC)


def ended(flow: str, state: str = "SUCCESS", **labels: str) -> dict[str, Any]:
    return {"id": f"x-{flow}", "namespace": "team", "flowId": flow, "state": state,
            "labels": labels}


def pre(**window_: Any) -> Preconditions:
    data: dict[str, Any] = {"flows": [{"namespace": "team", "flowId": "a", "states": ["SUCCESS"]},
                                      {"namespace": "team", "flowId": "b"}]}
    if window_:
        data["timeWindow"] = window_
    return Preconditions.model_validate(data)


def run(p: Preconditions, events: list[tuple[dict[str, Any], datetime]],
        progress: dict[str, Any] | None = None) -> list[bool]:
    fired = []
    for event, at in events:
        fire, progress = advance(p, progress, event, at)
        fired.append(fire)
    return fired


def test_fires_once_all_upstream_flows_succeeded_then_starts_again() -> None:
    p = pre()
    assert run(p, [(ended("a"), T), (ended("a"), T + timedelta(minutes=1)),
                   (ended("b", "FAILED"), T + timedelta(minutes=2)),  # any terminal state
                   (ended("a"), T + timedelta(minutes=3)),
                   (ended("b"), T + timedelta(minutes=4))]) == [False, False, True, False, True]


def test_states_and_labels_of_an_upstream_flow_must_match() -> None:
    p = Preconditions.model_validate({"flows": [
        {"namespace": "team", "flowId": "a", "states": ["SUCCESS"], "labels": {"env": "prod"}},
        {"namespace": "team", "flowId": "b"}]})
    assert run(p, [(ended("a", env="dev"), T), (ended("a", "FAILED", env="prod"), T),
                   (ended("b"), T), (ended("other"), T),
                   (ended("a", env="prod"), T)]) == [False, False, False, False, True]
    assert run(p, [(ended("b", "RUNNING"), T), (ended("a", env="prod"), T)]) == [False, False]


def test_progress_survives_as_plain_json() -> None:
    p = pre()
    fire, progress = advance(p, None, ended("a"), T)
    assert not fire and list(progress["met"]) == ["0:team/a"]
    import json
    restored = json.loads(json.dumps(progress))  # what the repository keeps
    fire, progress = advance(p, restored, ended("b"), T + timedelta(hours=1))
    assert fire and progress["met"] == {}


def test_duration_window_resets_at_its_boundary() -> None:
    p = pre(type="DURATION_WINDOW", window="PT1H")
    assert window(p.time_window, T + timedelta(minutes=59)) == (T, T + timedelta(hours=1))
    assert run(p, [(ended("a"), T + timedelta(minutes=50)),
                   (ended("b"), T + timedelta(minutes=70))]) == [False, False]
    shifted = pre(type="DURATION_WINDOW", window="PT1H", windowAdvance="PT30M")
    assert run(shifted, [(ended("a"), T + timedelta(minutes=50)),
                         (ended("b"), T + timedelta(minutes=70))]) == [False, True]


def test_default_window_is_a_utc_day() -> None:
    p = pre()
    assert run(p, [(ended("a"), T.replace(hour=23)),
                   (ended("b"), T.replace(hour=1) + timedelta(days=1))]) == [False, False]


def test_sliding_window_forgets_old_upstream_executions() -> None:
    p = pre(type="SLIDING_WINDOW", window="PT1H")
    assert run(p, [(ended("a"), T), (ended("b"), T + timedelta(minutes=61))]) == [False, False]
    assert run(p, [(ended("a"), T), (ended("b"), T + timedelta(minutes=59))]) == [False, True]


def test_daily_deadline_and_daily_window() -> None:
    deadline = pre(type="DAILY_TIME_DEADLINE", deadline="09:00:00")
    assert run(deadline, [(ended("a"), T.replace(hour=8)),
                          (ended("b"), T.replace(hour=8, minute=30))]) == [False, True]
    assert run(deadline, [(ended("a"), T.replace(hour=8)),
                          (ended("b"), T.replace(hour=9, minute=30))]) == [False, False]
    daily = pre(type="DAILY_TIME_WINDOW", startTime="06:00:00", endTime="12:00:00")
    assert window(daily.time_window, T.replace(hour=5)) is None
    assert run(daily, [(ended("a"), T.replace(hour=5)), (ended("b"), T.replace(hour=7)),
                       (ended("a"), T.replace(hour=8))]) == [False, False, True]


def test_without_reset_every_further_match_fires() -> None:
    p = Preconditions.model_validate({
        "flows": [{"namespace": "team", "flowId": "a"}, {"namespace": "team", "flowId": "b"}],
        "resetOnSuccess": False})
    assert run(p, [(ended("a"), T), (ended("b"), T), (ended("b"), T),
                   (ended("other"), T)]) == [False, True, True, False]
