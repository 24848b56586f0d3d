from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from kray.testing import TaskRunner

from .conftest import SECRET

LOG = "io.kestra.plugin.core.log.Log"


def test_logs_a_rendered_message_at_info(runner: TaskRunner) -> None:
    result = runner.run({"id": "hello", "type": LOG, "message": "Hello {{ inputs.name }}"},
                        {"inputs": {"name": "World"}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs == {}
    assert [(line["level"], line["message"]) for line in result.logs] == [("INFO", "Hello World")]
    assert result.logs[0]["timestamp"]


def test_logs_each_message_of_a_list(runner: TaskRunner) -> None:
    result = runner.run({"id": "many", "type": "kray.core.log.Log", "level": "WARN",
                         "message": ["one", "{{ flow.id }}", "{{ flow.namespace }}"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages == ["one", "hello", "company.team"]
    assert {line["level"] for line in result.logs} == {"WARN"}


@pytest.mark.parametrize("level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"])
def test_every_level(runner: TaskRunner, level: str) -> None:
    result = runner.run({"id": "lvl", "type": LOG, "level": level, "message": "m"})
    assert result.state == "SUCCESS", result.error
    assert [line["level"] for line in result.logs] == [level]


def test_old_kestra_alias_and_warning_spelling(runner: TaskRunner) -> None:
    result = runner.run({"id": "old", "type": "io.kestra.core.tasks.log.Log",
                         "level": "warning", "message": "careful"})
    assert result.logs[0]["level"] == "WARN"


def test_task_log_level_drops_lower_lines(runner: TaskRunner) -> None:
    result = runner.run({"id": "quiet", "type": LOG, "logLevel": "ERROR", "level": "INFO",
                         "message": "dropped"})
    assert result.state == "SUCCESS"
    assert result.logs == []


def test_secret_is_masked_in_the_log(runner: TaskRunner,
                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kray.task"):
        result = runner.run({"id": "leak", "type": LOG,
                             "message": "token={{ secret('API') }} end"})
    assert result.state == "SUCCESS", result.error
    assert result.messages == ["token=****** end"]
    assert SECRET not in caplog.text
    assert "token=****** end" in caplog.text


def test_a_missing_secret_fails_the_task(runner: TaskRunner) -> None:
    result = runner.run({"id": "nosecret", "type": LOG, "message": "{{ secret('NOPE') }}"})
    assert result.state == "FAILED"
    assert "NOPE" in (result.error or "")


def test_an_undefined_variable_fails_the_task(runner: TaskRunner) -> None:
    result = runner.run({"id": "undef", "type": LOG, "message": "{{ inputs.missing }}"})
    assert result.state == "FAILED"
    assert "missing" in (result.error or "")
    assert result.messages_at("ERROR") == [result.error]


def test_unknown_property_and_level_are_rejected(runner: TaskRunner) -> None:
    with pytest.raises(ValidationError):
        runner.parse({"id": "typo", "type": LOG, "mesage": "x"})
    with pytest.raises(ValidationError):
        runner.parse({"id": "bad", "type": LOG, "message": "x", "level": "LOUD"})


def test_scalar_messages_are_logged_as_text(runner: TaskRunner) -> None:
    result = runner.run({"id": "n", "type": LOG, "message": [42, True, 1.5, "s"]})
    assert result.messages == ["42", "true", "1.5", "s"]
