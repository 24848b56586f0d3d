"""The worker's own rules, run in-process: oversized outputs spill to storage, short attempts
are not checkpointed, long ones are, and failures come back as clean results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kray.worker as worker
from kray.registry import PluginRegistry
from kray.storage.internal import InternalStorage
from kray.worker import TaskSpec, WorkerConfig, result_path, run_task


def task(data: dict):
    cls = PluginRegistry.default().resolve(data["type"])
    return cls.model_validate(data)


def spec(t, variables: dict | None = None) -> TaskSpec:
    return TaskSpec("ex1", "tests.worker", "flow", t, "tr1", 1, variables or {})


def test_large_output_spills_to_storage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(worker, "OUTPUT_INLINE_LIMIT", 1000)
    config = WorkerConfig(str(tmp_path / "storage"))
    big = "x" * 5000
    t = task({"id": "big", "type": "io.kestra.plugin.core.output.OutputValues",
              "values": {"small": "ok", "large": big}})
    result = run_task(config, spec(t))
    assert result["state"] == "SUCCESS"
    values_uri = result["outputs"]["values"]
    assert values_uri.startswith("kray:///tests/worker/flow/executions/ex1/")
    stored = json.loads(InternalStorage(str(tmp_path / "storage")).read(values_uri))
    assert stored == {"small": "ok", "large": big}
    assert any("inline limit" in line["message"] for line in result["logs"])


def test_small_output_stays_inline(tmp_path: Path) -> None:
    config = WorkerConfig(str(tmp_path / "storage"))
    t = task({"id": "r", "type": "io.kestra.plugin.core.debug.Return", "format": "{{ 6 * 7 }}"})
    result = run_task(config, spec(t))
    assert result["outputs"] == {"value": "42"}
    storage = InternalStorage(str(tmp_path / "storage"))
    assert not storage.exists(result_path("ex1", "tr1", 1))  # too short to checkpoint


def test_long_attempt_is_checkpointed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(worker, "CHECKPOINT_AFTER", 0.0)
    config = WorkerConfig(str(tmp_path / "storage"))
    t = task({"id": "r", "type": "io.kestra.plugin.core.debug.Return", "format": "hi"})
    run_task(config, spec(t))
    saved = json.loads(InternalStorage(str(tmp_path / "storage")).read(
        result_path("ex1", "tr1", 1)))
    assert saved["state"] == "SUCCESS" and saved["outputs"] == {"value": "hi"}


@pytest.mark.parametrize("data,message", [
    ({"id": "f", "type": "io.kestra.plugin.core.execution.Fail", "errorMessage": "nope"},
     "nope"),
    ({"id": "r", "type": "io.kestra.plugin.core.debug.Return", "format": "{{ missing.x }}"},
     "missing"),
])
def test_failures_come_back_as_results(tmp_path: Path, data: dict, message: str) -> None:
    result = run_task(WorkerConfig(str(tmp_path / "storage")), spec(task(data)))
    assert result["state"] == "FAILED"
    assert message in result["error"]
    assert "Traceback" not in result["error"]
