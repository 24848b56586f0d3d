from __future__ import annotations

import pytest
from kray.plugins.core.outputs import OutputValues, Return

from kray.testing import TaskRunner


@pytest.mark.parametrize("type_name", ["kray.core.debug.Return",
                                       "io.kestra.plugin.core.debug.Return",
                                       "io.kestra.core.tasks.debugs.Return"])
def test_return_renders_its_format(runner: TaskRunner, type_name: str) -> None:
    result = runner.run(
        {"id": "ret", "type": type_name,
         "format": "{{ inputs.greeting }}, {{ outputs.first.value | upper }}! ({{ task.id }})"},
        {"inputs": {"greeting": "Hello"}, "outputs": {"first": {"value": "world"}}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs == {"value": "Hello, WORLD! (ret)"}


def test_return_without_format_returns_null(runner: TaskRunner) -> None:
    assert runner.run(Return(id="r", type="kray.core.debug.Return")).outputs == {"value": None}


def test_return_masks_a_secret_in_its_output(runner: TaskRunner) -> None:
    result = runner.run({"id": "r", "type": "kray.core.debug.Return",
                         "format": "key={{ secret('API') }}"})
    assert result.outputs == {"value": "key=******"}


def test_output_values_renders_recursively(runner: TaskRunner) -> None:
    task = OutputValues.model_validate({
        "id": "out", "type": "io.kestra.plugin.core.output.OutputValues",
        "values": {"name": "{{ inputs.name }}", "count": 3, "flag": True,
                   "nested": {"list": ["{{ inputs.name }}-1", 2], "none": None}}})
    result = runner.run(task, {"inputs": {"name": "kray"}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs == {"values": {"name": "kray", "count": 3, "flag": True,
                                         "nested": {"list": ["kray-1", 2], "none": None}}}


def test_output_values_fails_on_a_bad_template(runner: TaskRunner) -> None:
    result = runner.run({"id": "out", "type": "kray.core.output.OutputValues",
                         "values": {"x": "{{ nope.nothing }}"}})
    assert result.state == "FAILED"
    assert result.error
