from __future__ import annotations

import time
from datetime import timedelta

import pytest
from kray.plugins.core.flow import Sleep
from pydantic import ValidationError

from kray.testing import TaskRunner


def test_sleep_waits_for_its_duration(runner: TaskRunner) -> None:
    task = runner.parse({"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep",
                         "duration": "PT0.2S"})
    assert isinstance(task, Sleep) and task.duration == timedelta(milliseconds=200)
    started = time.monotonic()
    result = runner.run(task)
    assert time.monotonic() - started >= 0.2
    assert result.state == "SUCCESS" and result.outputs == {}


def test_sleep_rejects_bad_durations(runner: TaskRunner) -> None:
    with pytest.raises(ValidationError):
        runner.parse({"id": "nap", "type": "kray.core.flow.Sleep", "duration": "soon"})
    with pytest.raises(ValidationError):
        runner.parse({"id": "nap", "type": "kray.core.flow.Sleep", "duration": "-PT1S"})
    with pytest.raises(ValidationError):
        runner.parse({"id": "nap", "type": "kray.core.flow.Sleep"})
