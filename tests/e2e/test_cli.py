"""``kray run`` and ``kray flow validate`` as a user runs them: a real process, real exit codes,
joining the session's Ray by address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.ray


def kray(*args: str, address: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kray.cli", *args]
    if address:
        cmd += ["--address", address]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def address(executor, ray_session) -> str:
    return ray_session.get_runtime_context().gcs_address


def test_run_hello_json(address: str) -> None:
    proc = kray("run", "examples/hello.yaml", "--input", "name=world", "--json",
                address=address)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert doc["state"] == "SUCCESS"
    assert doc["namespace"] == "demo" and doc["flowId"] == "hello"
    assert doc["outputs"] == {"shouted": "WORLD"}
    assert [t["taskId"] for t in doc["taskRuns"]] == ["greet", "shout", "when"]
    for tr in doc["taskRuns"]:
        assert set(tr) >= {"id", "taskId", "parentTaskRunId", "value", "state", "startDate",
                           "endDate", "attempts", "outputs"}
        assert tr["attempts"][0]["state"] == "SUCCESS"
    # progress and logs went to stderr
    assert "Hello, world!" in proc.stderr
    assert "greet" in proc.stderr


def test_run_failed_flow_exits_1(tmp_path: Path, address: str) -> None:
    flow = tmp_path / "fail.yaml"
    flow.write_text("id: fail\nnamespace: cli\ntasks:\n  - id: boom\n"
                    "    type: io.kestra.plugin.core.execution.Fail\n"
                    "    errorMessage: broken on purpose\n")
    proc = kray("run", str(flow), "--json", address=address)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "FAILED"
    assert "broken on purpose" in proc.stderr


def test_invalid_flow_exits_2_with_location(tmp_path: Path) -> None:
    flow = tmp_path / "bad.yaml"
    flow.write_text("id: bad\nnamespace: cli\ntasks:\n  - id: t\n"
                    "    type: io.kestra.plugin.core.log.Logg\n    message: hi\n")
    proc = kray("run", str(flow))  # no Ray needed: it fails before starting one
    assert proc.returncode == 2
    assert f"{flow}:5:11" in proc.stderr
    assert "io.kestra.plugin.core.log.Log" in proc.stderr  # the suggestion


def test_invalid_inputs_exit_2_before_anything_runs() -> None:
    bad_int = kray("run", str(ROOT / "tests/flows/valid/if_else.yaml"), "--input", "n=notanint")
    assert bad_int.returncode == 2
    assert "inputs.n" in bad_int.stderr
    missing = kray("run", str(ROOT / "tests/flows/valid/subflow_child.yaml"))
    assert missing.returncode == 2
    assert "inputs.word" in missing.stderr


def test_flow_validate(tmp_path: Path) -> None:
    good = kray("flow", "validate", "examples")
    assert good.returncode == 0, good.stderr + good.stdout
    bad = tmp_path / "cycle.yaml"
    bad.write_text("id: cyc\nnamespace: cli\ntasks:\n  - id: d\n"
                   "    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
                   "      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}\n"
                   "        dependsOn: [b]\n"
                   "      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}\n"
                   "        dependsOn: [a]\n")
    proc = kray("flow", "validate", str(bad), "examples/hello.yaml")
    assert proc.returncode == 2
    assert f"{bad}:" in proc.stderr and "cycle" in proc.stderr.lower()


def test_file_input_is_uploaded(tmp_path: Path, address: str) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    flow = tmp_path / "file.yaml"
    flow.write_text("""id: file_input
namespace: cli
inputs:
  - id: data
    type: FILE
tasks:
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ inputs.data }}"
""")
    proc = kray("run", str(flow), "--input", f"data=@{data}", "--json", address=address)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["taskRuns"][0]["outputs"] == {"size": len(data.read_bytes())}
    missing = kray("run", str(flow), "--input", f"data=@{tmp_path / 'nope.csv'}")
    assert missing.returncode == 2
    assert "inputs.data" in missing.stderr
