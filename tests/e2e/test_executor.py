"""The executor actor through its API: timeouts really stop the worker, kill, pause/resume,
restart, flow concurrency, and recovery after the executor process is killed."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from kray.runner import follow

pytestmark = pytest.mark.ray


def deploy_and_start(ray, executor, source: str, inputs: dict | None = None) -> str:
    flow = ray.get(executor.deploy.remote(source))
    created = ray.get(executor.create_execution.remote(flow["namespace"], flow["id"],
                                                       inputs or {}))
    return created["id"]


def wait_state(ray, executor, execution_id: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = ray.get(executor.get_execution.remote(execution_id))
        if doc["state"] in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} never reached {states}: {doc['state']}")


def task_processes() -> list[psutil.Process]:
    """This session's Ray workers currently running a kray task (titled ray::run_task):
    other Ray instances on the machine are not ours to count."""
    import ray

    session = ray._private.worker._global_node.get_session_dir_path()
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if not cmd.startswith("ray::run_task"):
            continue
        try:
            parent = " ".join(p.parent().cmdline())
        except (psutil.Error, AttributeError):
            continue
        if session in parent:
            found.append(p)
    return found


def test_timeout_stops_the_worker(ray_session, executor) -> None:
    source = """id: timeout
namespace: e2e
tasks:
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
    timeout: PT1S
"""
    t0 = time.time()
    ex_id = deploy_and_start(ray_session, executor, source)
    doc = follow(executor, ex_id)
    assert doc["state"] == "FAILED"
    assert time.time() - t0 < 30
    run = doc["taskRuns"][0]
    assert "timed out" in run["error"]
    assert run["attempts"][0]["state"] == "FAILED"
    deadline = time.time() + 15
    while task_processes() and time.time() < deadline:
        time.sleep(0.2)
    assert task_processes() == [], "the timed-out task's worker is still running"


def test_kill_running_execution(ray_session, executor) -> None:
    source = """id: killme
namespace: e2e
tasks:
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: never
"""
    ex_id = deploy_and_start(ray_session, executor, source)
    wait_state(ray_session, executor, ex_id, {"RUNNING"})
    time.sleep(0.5)
    ray_session.get(executor.kill.remote(ex_id))
    doc = follow(executor, ex_id)
    assert doc["state"] == "KILLED"
    assert [t["taskId"] for t in doc["taskRuns"]] == ["slow"]
    assert doc["taskRuns"][0]["state"] == "KILLED"


def test_pause_and_resume_with_inputs(ray_session, executor) -> None:
    source = """id: approve
namespace: e2e
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "approved={{ outputs.gate.onResume.approved }}"
"""
    ex_id = deploy_and_start(ray_session, executor, source)
    wait_state(ray_session, executor, ex_id, {"PAUSED"})
    ray_session.get(executor.resume.remote(ex_id, {"approved": True}))
    doc = follow(executor, ex_id)
    assert doc["state"] == "SUCCESS"
    after = next(t for t in doc["taskRuns"] if t["taskId"] == "after")
    assert after["outputs"]["value"] == "approved=true"


def test_restart_failed_execution(ray_session, executor) -> None:
    source = """id: restartme
namespace: e2e
tasks:
  - id: once
    type: io.kestra.plugin.core.kv.Get
    key: restart_gate
    errorOnMissing: true
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: done
"""
    ex_id = deploy_and_start(ray_session, executor, source)
    doc = follow(executor, ex_id)
    assert doc["state"] == "FAILED"
    ray_session.get(executor.kv.remote("set", "e2e", "restart_gate", "open"))
    ray_session.get(executor.restart.remote(ex_id))
    doc = follow(executor, ex_id)
    assert doc["state"] == "SUCCESS"
    once = next(t for t in doc["taskRuns"] if t["taskId"] == "once")
    assert [a["state"] for a in once["attempts"]] == ["FAILED", "SUCCESS"]


@pytest.mark.parametrize("behavior,second", [("QUEUE", "SUCCESS"), ("CANCEL", "CANCELLED"),
                                              ("FAIL", "FAILED")])
def test_flow_concurrency(ray_session, executor, behavior: str, second: str) -> None:
    source = f"""id: conc_{behavior.lower()}
namespace: e2e
concurrency:
  limit: 1
  behavior: {behavior}
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
"""
    first = deploy_and_start(ray_session, executor, source)
    other = ray_session.get(executor.create_execution.remote("e2e", f"conc_{behavior.lower()}",
                                                             {}))
    assert other["state"] == {"QUEUE": "QUEUED", "CANCEL": "CANCELLED",
                              "FAIL": "FAILED"}[behavior]
    assert follow(executor, first)["state"] == "SUCCESS"
    assert follow(executor, other["id"])["state"] == second


@pytest.mark.slow
def test_recovery_after_executor_is_killed(ray_session, executor) -> None:
    source = """id: recover
namespace: e2e
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: a
  - id: nap1
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1.5S
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.a.value }}b"
  - id: nap2
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: c
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.b.value }}c"
outputs:
  - id: abc
    type: STRING
    value: "{{ outputs.c.value }}"
"""
    ex_id = deploy_and_start(ray_session, executor, source)
    pid = ray_session.get(executor.ping.remote())["pid"]
    time.sleep(1.0)  # mid-run: `a` done, `nap1` in flight
    os.kill(pid, signal.SIGKILL)
    doc = follow(executor, ex_id)  # calls retry until Ray has restarted the actor
    assert ray_session.get(executor.ping.remote())["pid"] != pid
    assert doc["state"] == "SUCCESS", doc.get("error")
    assert doc["outputs"] == {"abc": "abc"}
    outputs = {t["taskId"]: t["outputs"] for t in doc["taskRuns"]}
    assert outputs["a"] == {"value": "a"} and outputs["b"] == {"value": "ab"}
    assert len(doc["taskRuns"]) == 5
