"""An existing cluster (``ray start --head`` on 127.0.0.1, with its dashboard): flows submitted
as Ray jobs through the job submission API, exactly ``ray job submit --working-dir . -- kray
run flow.yaml``, and two ``kray run --address`` drivers, all at once. They share one executor.

The cluster has kray installed (it runs from this machine's Python), so "a cluster that lacks
kray" is shown by shipping kray with the job (``py_modules``) and checking that the job's
driver imported that copy, not the installed one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.local import ROOT, Head, run_scenario, start_head

pytestmark = pytest.mark.slow

HELLO = """id: hello
namespace: jobs
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello from a Ray job"
  - id: shout
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 'job' | upper }}"
  - id: keep
    type: io.kestra.plugin.core.storage.Write
    content: kept where the head's KRAY_STORAGE_URL says
    extension: .txt
outputs:
  - id: shouted
    type: STRING
    value: "{{ outputs.shout.value }}"
"""

FAILING = """id: failing
namespace: jobs
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: failed on purpose
"""

SLOWER = """id: local_driver
namespace: jobs
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: done
"""

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def kray_package(target: Path) -> Path:
    """kray as its wheel lays it out (``plugins``, ``storage`` and ``api`` inside ``kray``),
    for ``py_modules``: what a cluster without kray needs."""
    package = target / "kray"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "kray", package, ignore=ignore)
    for folder in ("plugins", "storage", "api"):
        shutil.copytree(ROOT / folder, package / folder, ignore=ignore)
    return package


@pytest.fixture(scope="module")
def head(short_tmp: Path) -> Iterator[Head]:
    head = start_head(short_tmp / "ray", num_cpus=2, dashboard=True,
                      env={"KRAY_STORAGE_URL": str(short_tmp / "shared")})
    yield head
    head.stop()


@pytest.fixture(scope="module")
def report(head: Head, short_tmp: Path) -> dict[str, Any]:
    from ray.job_submission import JobSubmissionClient

    work = short_tmp / "work"
    work.mkdir()
    (work / "hello.yaml").write_text(HELLO)
    (work / "failing.yaml").write_text(FAILING)
    (short_tmp / "local.yaml").write_text(SLOWER)
    package = kray_package(short_tmp / "ship")

    client = JobSubmissionClient(head.dashboard_url)
    jobs = {
        # exactly `ray job submit --working-dir . -- kray run hello.yaml`
        "hello": client.submit_job(entrypoint="kray run hello.yaml",
                                   runtime_env={"working_dir": str(work)}),
        "failing": client.submit_job(
            entrypoint="python -c 'import kray; print(\"KRAY-FROM\", kray.__file__)' && "
                       "python -m kray.cli run failing.yaml",
            runtime_env={"working_dir": str(work), "py_modules": [str(package)]}),
    }
    command = ["kray", "run", str(short_tmp / "local.yaml"), "--address", head.address,
               "--json", "--data-dir", str(short_tmp / "local-data")]
    drivers = [subprocess.Popen(command, env=head.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=short_tmp)
               for _ in range(2)]
    outs = [d.communicate(timeout=300) for d in drivers]
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while len(statuses) < len(jobs) and time.monotonic() < deadline:
        for name, job in jobs.items():
            status = str(client.get_job_status(job).value)
            if status in TERMINAL:
                statuses[name] = status
        time.sleep(1)
    logs = {name: client.get_job_logs(job) for name, job in jobs.items()}
    from ray.util.state import list_actors
    executors = list_actors(address=head.dashboard_url,
                            filters=[("class_name", "=", "ExecutorService")], detail=True)
    ids = [json.loads(out)["id"] for out, _ in outs if out.strip()]
    for name in jobs:
        found = re.search(r"jobs\.\w+ (\w{22}) (SUCCESS|FAILED)", logs[name])
        if found:
            ids.append(found.group(1))
    probe = run_scenario("probe", {"address": head.address, "execution_ids": ids},
                         token=head.token, timeout=120)
    return {"statuses": statuses, "logs": logs, "drivers": outs,
            "codes": [d.returncode for d in drivers], "executors": executors,
            "ids": ids, "probe": probe}


def test_a_good_flow_is_a_succeeded_job_whose_logs_show_progress(report: dict) -> None:
    assert report["statuses"]["hello"] == "SUCCEEDED", report["logs"]["hello"]
    log = report["logs"]["hello"]
    assert "■ greet SUCCESS" in log and "■ shout SUCCESS" in log
    assert "Hello from a Ray job" in log
    assert re.search(r"jobs\.hello \w{22} SUCCESS", log)
    assert '"shouted": "JOB"' in log  # the flow's outputs are printed at the end


def test_a_failing_flow_is_a_failed_job(report: dict) -> None:
    assert report["statuses"]["failing"] == "FAILED", report["logs"]["failing"]
    log = report["logs"]["failing"]
    assert "■ boom FAILED" in log and "failed on purpose" in log
    assert re.search(r"jobs\.failing \w{22} FAILED", log)


def test_storage_comes_from_the_head_nodes_environment(short_tmp: Path, report: dict) -> None:
    # `kray run` created the executor without a storage URL: the head's KRAY_STORAGE_URL won
    (kept,) = (short_tmp / "shared").rglob("keep.txt")
    assert kept.read_text() == "kept where the head's KRAY_STORAGE_URL says"


def test_the_runtime_env_can_carry_kray(report: dict) -> None:
    found = re.search(r"KRAY-FROM (\S+)", report["logs"]["failing"])
    assert found, report["logs"]["failing"]
    assert "runtime_resources" in found.group(1)  # the copy shipped with the job
    assert not found.group(1).startswith(str(ROOT))


def test_drivers_join_with_address_and_share_one_executor(report: dict) -> None:
    assert report["codes"] == [0, 0], report["drivers"]
    for out, _ in report["drivers"]:
        assert json.loads(out)["state"] == "SUCCESS"
    assert len(report["executors"]) == 1, report["executors"]  # never a rival
    executor = report["executors"][0]
    assert executor["state"] == "ALIVE" and executor["name"] == "kray-executor"
    assert len(report["ids"]) == 4
    assert report["probe"]["states"] == dict(zip(
        report["ids"], ["SUCCESS", "SUCCESS", "SUCCESS", "FAILED"]))
    assert report["probe"]["ping"]["pid"] == executor["pid"]
