from __future__ import annotations

import pytest
from pydantic import ValidationError

from kray.testing import TaskRunner

FAIL = "io.kestra.plugin.core.execution.Fail"
EXIT = "io.kestra.plugin.core.execution.Exit"
LABELS = "io.kestra.plugin.core.execution.Labels"


def test_fail_without_condition_always_fails(runner: TaskRunner) -> None:
    result = runner.run({"id": "boom", "type": FAIL})
    assert result.state == "FAILED"
    assert result.error == "Task failure"
    assert result.messages_at("ERROR") == ["Task failure"]
    assert not any("Traceback" in m for m in result.messages)


def test_fail_renders_its_error_message(runner: TaskRunner) -> None:
    result = runner.run({"id": "boom", "type": "io.kestra.core.tasks.executions.Fail",
                         "errorMessage": "bad day: {{ inputs.day }}"}, {"inputs": {"day": "mon"}})
    assert (result.state, result.error) == ("FAILED", "bad day: mon")


def test_fail_masks_a_secret_in_its_message(runner: TaskRunner) -> None:
    result = runner.run({"id": "boom", "type": FAIL, "errorMessage": "{{ secret('API') }}!"})
    assert result.error == "******!"
    assert all("s3cr3t" not in m for m in result.messages)


@pytest.mark.parametrize("condition, fails", [
    ("{{ inputs.n > 1 }}", True),
    ("{{ inputs.n < 1 }}", False),
    ("{{ inputs.n == 2 }}", True),
    ("true", True),
    ("false", False),
    ("0", False),
    ("", False),
    ("{{ inputs.empty }}", False),
    (True, True),
    (False, False),
])
def test_fail_condition(runner: TaskRunner, condition: object, fails: bool) -> None:
    result = runner.run({"id": "check", "type": FAIL, "condition": condition,
                         "errorMessage": "n is {{ inputs.n }}"},
                        {"inputs": {"n": 2, "empty": ""}})
    if fails:
        assert (result.state, result.error) == ("FAILED", "n is 2")
    else:
        assert (result.state, result.error, result.outputs) == ("SUCCESS", None, {})


@pytest.mark.parametrize("state, effect", [
    (None, "SUCCESS"), ("SUCCESS", "SUCCESS"), ("WARNING", "WARNING"), ("FAILED", "FAILED"),
    ("KILLED", "KILLED"), ("CANCELED", "CANCELLED"), ("CANCELLED", "CANCELLED"),
    ("killed", "KILLED"),
])
def test_exit_records_the_end_state(runner: TaskRunner, state: str | None, effect: str) -> None:
    task = {"id": "stop", "type": EXIT} | ({"state": state} if state else {})
    result = runner.run(task)
    assert result.state == "SUCCESS", result.error
    assert result.effects == {"exit": effect}


def test_exit_rejects_other_states(runner: TaskRunner) -> None:
    with pytest.raises(ValidationError):
        runner.parse({"id": "stop", "type": EXIT, "state": "RUNNING"})


def test_labels_from_a_map(runner: TaskRunner) -> None:
    result = runner.run({"id": "lab", "type": LABELS,
                         "labels": {"env": "{{ inputs.env }}", "{{ inputs.k }}": "v",
                                    "count": 3, "ok": True}},
                        {"inputs": {"env": "prod", "k": "team"}})
    assert result.state == "SUCCESS", result.error
    assert result.effects == {"labels": {"env": "prod", "team": "v", "count": "3",
                                         "ok": "true"}}


def test_labels_from_a_list(runner: TaskRunner) -> None:
    result = runner.run({"id": "lab", "type": "io.kestra.core.tasks.executions.Labels",
                         "labels": [{"key": "a", "value": "1"},
                                    {"key": "b", "value": "{{ flow.id }}"}]})
    assert result.effects == {"labels": {"a": "1", "b": "hello"}}


def test_labels_from_a_json_template(runner: TaskRunner) -> None:
    result = runner.run({"id": "lab", "type": LABELS, "labels": "{{ outputs.t.values }}"},
                        {"outputs": {"t": {"values": {"x": "y"}}}})
    assert result.state == "SUCCESS", result.error
    assert result.effects == {"labels": {"x": "y"}}


@pytest.mark.parametrize("labels", [
    [{"key": "a"}], "not json", "[1, 2]", {"": "empty key"},
])
def test_bad_labels_fail(runner: TaskRunner, labels: object) -> None:
    result = runner.run({"id": "lab", "type": LABELS, "labels": labels})
    assert result.state == "FAILED"
    assert result.error and "label" in result.error
    assert result.effects == {}


def test_labels_of_the_wrong_shape_are_rejected(runner: TaskRunner) -> None:
    with pytest.raises(ValidationError):
        runner.parse({"id": "lab", "type": LABELS, "labels": ["a=b"]})
