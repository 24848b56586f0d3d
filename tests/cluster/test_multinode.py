"""Several nodes (``ray.cluster_utils.Cluster``), internal storage on S3 (moto on 127.0.0.1):
placement by custom resources, pluginDefaults and runtimeEnv reaching Ray, outputs read across
nodes, tasks no node can hold, and a node lost mid-task.

One child process runs it all on one cluster (``scenarios.multinode``); the tests read its
report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.local import run_scenario
from tests.conftest import skip_or_fail
from tests.s3server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    create_bucket,
    moto_available,
    moto_s3_server,
    s3_storage_options,
)

pytestmark = pytest.mark.slow

BUCKET = "kray-cluster"


@pytest.fixture(scope="module")
def report(short_tmp: Path) -> dict[str, Any]:
    if not moto_available():
        skip_or_fail("moto[server] is not installed")
    import boto3

    with moto_s3_server() as endpoint:
        create_bucket(endpoint, BUCKET)
        result = run_scenario("multinode", {
            "temp_dir": str(short_tmp / "ray"), "data_dir": str(short_tmp / "data"),
            "storage_url": f"s3://{BUCKET}/kray",
            "storage_options": s3_storage_options(endpoint)}, timeout=420)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name=REGION)
        listing = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        client.close()
    result["s3"] = sorted(o["Key"] for o in listing)
    return result


def node_of(run: dict[str, Any]) -> str:
    assert run["state"] == "SUCCESS", run["error"]
    return run["nodes"][-1]


def test_tasks_land_on_the_node_that_has_their_resource(report: dict[str, Any]) -> None:
    nodes, placement = report["nodes"], report["placement"]
    assert placement["state"] == "SUCCESS", placement
    runs = placement["runs"]
    assert node_of(runs["on_a"]) == nodes["a"]  # resources: {zone_a: 1, cpu: 1, memory: 32Mi}
    assert node_of(runs["by_default"]) == nodes["b"]  # from the flow's pluginDefaults
    assert node_of(runs["env"]) == nodes["c"]
    assert runs["env"]["outputs"]["vars"] == {"mark": "from-runtime-env"}  # runtimeEnv


def test_outputs_are_read_on_other_nodes_through_s3(report: dict[str, Any]) -> None:
    data, nodes = report["data"], report["nodes"]
    assert data["state"] == "SUCCESS", data
    runs = data["runs"]
    # a shell task's outputFiles on a, DuckDB on b reads them and stores its result, c reads
    # that and a file core storage.Write wrote on a.
    assert node_of(runs["write"]) == node_of(runs["note"]) == nodes["a"]
    assert node_of(runs["total"]) == nodes["b"]
    assert node_of(runs["check"]) == nodes["c"]
    assert runs["check"]["outputs"]["value"] == '{"total":10} / written on zone a'
    stored = [key.rsplit("/", 1)[-1] for key in report["s3"]
              if key.startswith(f"kray/cluster/data/executions/{data['id']}/")]
    assert sorted(stored) == ["note.txt", "numbers.csv", "total.jsonl"]


def test_a_task_no_node_can_hold_fails_at_once(report: dict[str, Any]) -> None:
    impossible = report["impossible"]
    assert impossible["state"] == "FAILED"
    assert impossible["seconds"] < 15  # it does not wait in Ray's queue
    errors = {task: impossible["runs"][task]["error"] for task in ("gpu", "zone_z", "huge")}
    for error in errors.values():
        assert error.startswith("no node of this Ray cluster can ever run this task"), error
        assert "the cluster does not autoscale" in error
    assert "asks for {CPU=1, GPU=1}, no node has GPU" in errors["gpu"]
    assert "no node has zone_z" in errors["zone_z"]
    assert "memory=100TiB}, memory: at most" in errors["huge"]


def test_a_lost_node_runs_the_task_again_on_another(report: dict[str, Any]) -> None:
    loss = report["loss"]
    assert loss["state"] == "SUCCESS", loss
    run = loss["runs"]["survive"]
    assert run["attempts"] == ["FAILED", "SUCCESS"]
    assert run["lost"] == 1
    assert "the worker was lost" in run["errors"][0]
    assert run["nodes"][1] == loss["second"] != loss["first"]
    assert run["outputs"]["exitCode"] == 0
    assert len(run["rayTasks"]) == 2 and run["rayTasks"][0] != run["rayTasks"][1]


def test_attempts_link_to_their_ray_tasks(report: dict[str, Any]) -> None:
    links = {link["taskId"]: link for link in report["links"]}
    job = report["job"]
    on_a = links["on_a"]
    assert on_a["nodeId"] == report["nodes"]["a"]
    assert on_a["task"] == (f"http://dashboard.example:8265/#/jobs/{job}/tasks/"
                            f"{on_a['rayTaskId']}")
    assert on_a["node"] == f"http://dashboard.example:8265/#/cluster/nodes/{on_a['nodeId']}"
