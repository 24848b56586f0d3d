"""Python script tasks: real Python processes, the ``kray.script`` helper, cached venvs."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kray.logs import TaskLogger
from kray.plugins.scripts import venv
from kray.plugins.scripts.base import ScriptTask
from kray.runcontext import LocalRunContext, execute_task
from kray.storage.secrets import Masker
from kray.testing import TaskRunner

PY = "io.kestra.plugin.scripts.python.Script"
PY_CMD = "io.kestra.plugin.scripts.python.Commands"


def test_helper_sends_outputs_metrics_and_logs(runner: TaskRunner) -> None:
    script = """
from kray.script import counter, gauge, log, outputs, timer
outputs({"rows": 3, "names": ["a", "b"]})
outputs({"ns": "{{ flow.namespace }}"})
counter("rows", 3, table="users")
gauge("ratio", 0.5)
timer("step", lambda: None)
log("almost done", level="WARN")
print("plain print")
"""
    result = runner.run({"id": "py", "type": PY, "script": script})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["vars"] == {"rows": 3, "names": ["a", "b"], "ns": "company.team"}
    assert [(m["name"], m["type"], m["tags"]) for m in result.metrics] == [
        ("rows", "counter", {"table": "users"}), ("ratio", "gauge", {}), ("step", "timer", {})]
    assert 0 <= result.metrics[2]["value"] < 1
    assert result.messages_at("WARN") == ["almost done"]
    assert result.messages_at("INFO") == ["plain print"]


def test_kestra_compatible_helper(runner: TaskRunner) -> None:
    script = """
from kray.script import Kestra
Kestra.outputs({"ok": True})
Kestra.counter("n", 2, {"k": 1, "type": "batch"})
Kestra.timer("t", 0.25)
logger = Kestra.logger()
logger.info("from logging")
logger.warning("a warning")
"""
    result = runner.run({"id": "kestra", "type": "kray.scripts.python.Script",
                         "script": script})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["vars"] == {"ok": True}
    assert result.metrics == [{"name": "n", "value": 2, "type": "counter",
                               "tags": {"k": "1", "type": "batch"}},
                              {"name": "t", "value": 0.25, "type": "timer", "tags": {}}]
    assert [(l["level"], l["message"]) for l in result.logs] == [
        ("INFO", "from logging"), ("WARN", "a warning")]


def test_a_python_error_fails_with_its_last_line(runner: TaskRunner) -> None:
    result = runner.run({"id": "boom", "type": PY, "script": "x = 1\nprint(x / 0)\n"})
    assert result.state == "FAILED"
    assert result.error == "command failed with exit code 1: " \
                           "ZeroDivisionError: division by zero"
    assert any(m.startswith("Traceback") for m in result.messages_at("ERROR"))


def test_commands_find_the_current_interpreter_as_python(runner: TaskRunner) -> None:
    result = runner.run({"id": "which", "type": PY_CMD, "inputFiles": {
        "main.py": "import sys\nprint(sys.prefix)\nprint(sys.argv[1])"},
        "commands": ["python main.py {{ flow.id }}",
                     "python3 -c 'import sys; print(sys.prefix)'"]})
    assert result.state == "SUCCESS", result.error
    assert result.messages_at("INFO") == [sys.prefix, "hello", sys.prefix]


def test_prints_stream_while_the_script_runs(runner: TaskRunner) -> None:
    """Each line reaches ``ctx.logger`` as it is printed (the worker's live-log thread ships
    what the logger holds), not when the script ends: Python is told not to buffer."""
    seen: list[tuple[str, float]] = []
    masker = Masker()
    logger = TaskLogger(masker=masker,
                        on_line=lambda line: seen.append((line["message"], time.monotonic())))
    task = runner.parse({"id": "live", "type": PY,
                         "script": "import time\nprint('early')\ntime.sleep(1)\nprint('late')"})
    with LocalRunContext(execution_id="e1", namespace="company.team", flow_id="live",
                         task_id="live", task_run_id="r1", attempt=1, variables={},
                         engine=runner.engine, storage=runner.storage, kv=runner.kv,
                         secrets=runner.secrets, masker=masker, logger=logger) as ctx:
        outcome = execute_task(task, ctx)
        ended = time.monotonic()
    assert outcome.state.value == "SUCCESS", outcome.error
    assert [m for m, _ in seen] == ["early", "late"]
    assert ended - seen[0][1] >= 0.9


@pytest.mark.slow
def test_dependencies_are_installed_once_and_reused(runner: TaskRunner, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "venvs"
    monkeypatch.setenv(venv.CACHE_ENV, str(cache))
    task = {"id": "deps", "type": PY, "dependencies": ["six", "  six  "],
            "script": "import sys, six\nfrom kray.script import outputs\n"
                      "outputs({'six': six.__version__, 'prefix': sys.prefix})"}
    started = time.monotonic()
    first = runner.run(task)
    first_took = time.monotonic() - started
    assert first.state == "SUCCESS", (first.error, first.messages)
    folder = Path(first.outputs["vars"]["prefix"])
    assert folder.parent == cache
    assert first.outputs["vars"]["six"]
    assert any("building a virtual environment" in m for m in first.messages_at("INFO"))
    before = folder.stat()

    started = time.monotonic()
    second = runner.run({"id": "again", "type": PY_CMD, "dependencies": ["six"],
                         "inputFiles": {"s.py": task["script"]}, "commands": ["python s.py"]})
    second_took = time.monotonic() - started
    assert second.state == "SUCCESS", second.error
    assert second.outputs["vars"] == first.outputs["vars"]
    assert not any("building" in m for m in second.messages)
    after = folder.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second_took < first_took / 3, (first_took, second_took)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [folder.name]


@pytest.mark.slow
def test_concurrent_builds_of_one_environment_build_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(venv.CACHE_ENV, str(tmp_path))
    env = ScriptTask.base_env()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: venv.ensure([], log=lambda _l: None, env=env),
                                range(2)))
    assert results[0][0] == results[1][0]
    assert sorted(built for _, built in results) == [False, True]
    assert os.access(venv.python_of(results[0][0]), os.X_OK)
