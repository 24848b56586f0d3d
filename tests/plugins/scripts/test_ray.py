"""Script tasks on the session's local Ray: a timeout kills the script with its worker, and
its lines reach the executor while it still runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kray.runner import follow

from .conftest import alive, read_pids, wait_dead

pytestmark = pytest.mark.ray


def start(ray, executor, source: str) -> str:
    flow = ray.get(executor.deploy.remote(source))
    return ray.get(executor.create_execution.remote(flow["namespace"], flow["id"], {}))["id"]


def test_a_timeout_kills_the_script_and_its_children(ray_session, executor,
                                                     tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    source = f"""id: script_timeout
namespace: e2e.scripts
tasks:
  - id: slow
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT4S
    commands:
      - sleep 60 & echo $! >> {pid_file}
      - echo $$ >> {pid_file}
      - wait
"""
    ex_id = start(ray_session, executor, source)
    deadline = time.monotonic() + 30
    while (not pid_file.exists() or len(read_pids(pid_file)) < 2) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = read_pids(pid_file)
    assert len(pids) == 2 and all(alive(p) for p in pids), "the script never started"
    doc = follow(executor, ex_id)
    assert doc["state"] == "FAILED"
    assert "timed out" in (doc["taskRuns"][0]["error"] or "")
    assert wait_dead(pids, timeout=10) == [], "the script outlived its killed worker"


def test_log_lines_arrive_before_the_task_ends(ray_session, executor) -> None:
    source = """id: script_live_logs
namespace: e2e.scripts
tasks:
  - id: talk
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import time
      print("first-line")
      time.sleep(3)
      print("last-line")
"""
    ex_id = start(ray_session, executor, source)
    version, cursor, seen = -1, 0, []
    deadline = time.monotonic() + 30
    while "first-line" not in seen and time.monotonic() < deadline:
        update = ray_session.get(executor.follow.remote(ex_id, version, cursor))
        version, cursor = update["version"], update["logCursor"]
        seen += [line["message"] for line in update["logs"]]
        assert not update["done"], f"the execution ended before its first line came: {seen}"
    doc = ray_session.get(executor.get_execution.remote(ex_id))
    assert "first-line" in seen and "last-line" not in seen
    assert doc["taskRuns"][0]["state"] == "RUNNING"
    doc = follow(executor, ex_id)
    assert doc["state"] == "SUCCESS", doc.get("error")
    messages = [line["message"] for line in
                ray_session.get(executor.execution_logs.remote(ex_id))]
    assert messages == ["first-line", "last-line"]
