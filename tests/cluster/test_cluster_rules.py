"""``kray.cluster``'s rules without a cluster: demand, node types, the feasibility verdict and
its message, the capacity request's life, storage from the environment, dashboard links, and
the deployment files parse into what the docs say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kray.cluster import (
    CapacityPlanner,
    NodeTypes,
    dashboard_links,
    demand_of,
    fits,
    infeasible_reason,
    node_types_from_config,
    parse_node_types,
    storage_from_env,
)
from kray.executor import ray_options
from kray.registry import PluginRegistry
from tests.cluster.local import ROOT

GiB = 1024**3


def task(**extra):
    cls = PluginRegistry.default().resolve("io.kestra.plugin.core.log.Log")
    return cls.model_validate({"id": "t", "type": "io.kestra.plugin.core.log.Log",
                               "message": "m", **extra})


def test_demand_follows_the_tasks_ray_options() -> None:
    options = ray_options(task(resources={"cpu": 2, "gpu": 1, "memory": "1Gi", "zone_a": 1}))
    assert demand_of(options) == {"CPU": 2.0, "GPU": 1.0, "memory": float(GiB),
                                  "zone_a": 1.0}
    assert demand_of({}) == {"CPU": 1.0}  # Ray's default for a task
    assert demand_of(ray_options(task(resources={"cpu": 0}))) == {}


def test_fits_one_node() -> None:
    assert fits({"CPU": 1, "zone_a": 1}, {"CPU": 4, "zone_a": 1, "memory": 8 * GiB})
    assert not fits({"CPU": 1, "zone_a": 2}, {"CPU": 4, "zone_a": 1})
    assert not fits({"GPU": 1}, {"CPU": 4})
    # a node type may leave CPU/GPU/memory to the instance type, never custom resources
    assert fits({"CPU": 8, "memory": GiB}, {"zone_a": 1}, inferred=("CPU", "GPU", "memory"))
    assert not fits({"zone_b": 1}, {"zone_a": 1}, inferred=("CPU", "GPU", "memory"))


def test_node_types_of_a_cluster_launcher_config() -> None:
    config = {"head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 0}, "max_workers": 0},
        "cpu": {"resources": {"CPU": 8, "object_store_memory": 10**9}, "max_workers": 10},
        "gpu": {"resources": {"CPU": 8, "GPU": 1, "a10g": 1}},
        "off": {"resources": {"CPU": 64}, "max_workers": 0}}}
    assert node_types_from_config(config) == {"cpu": {"CPU": 8.0},
                                              "gpu": {"CPU": 8.0, "GPU": 1.0, "a10g": 1.0}}


def test_node_types_from_the_environment(tmp_path: Path) -> None:
    assert parse_node_types("fixed").fixed
    assert not parse_node_types("off").enabled
    inline = parse_node_types('{"gpu": {"CPU": 8, "GPU": 1}}')
    assert inline.types == {"gpu": {"CPU": 8.0, "GPU": 1.0}} and inline.may_grow
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"available_node_types": {"w": {"resources": {"x": 2}}}}))
    assert parse_node_types(str(path)).types == {"w": {"x": 2.0}}


def test_the_deployment_files_name_the_node_types_kray_checks() -> None:
    launcher = parse_node_types(str(ROOT / "deploy" / "cluster.yaml"))
    assert set(launcher.types or {}) == {"cpu", "highmem", "gpu"}
    assert launcher.types["gpu"]["GPU"] == 1
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "raycluster.yaml")
                                   .read_text()))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in head["env"]}
    declared = parse_node_types(env["KRAY_NODE_TYPES"]).types or {}
    groups = {g["groupName"] for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(declared) == groups  # the env var mirrors the worker groups
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert env["KRAY_STORAGE_URL"].startswith("s3://")
    mounts = {m["mountPath"] for m in head["volumeMounts"]}
    assert "/data" in mounts and env["KRAY_DATA_DIR"].startswith("/data/")
    job = yaml.safe_load((ROOT / "deploy" / "kuberay" / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and "kray run" in job["spec"]["entrypoint"]


def test_an_impossible_demand_is_explained() -> None:
    nodes = {"n1": {"CPU": 4.0, "memory": 8.0 * GiB, "zone_a": 1.0}, "head": {"memory": GiB}}
    fixed = NodeTypes(fixed=True)
    assert infeasible_reason({"CPU": 1, "zone_a": 1}, nodes, fixed) is None
    gpu = infeasible_reason({"CPU": 1, "GPU": 1}, nodes, fixed)
    assert gpu == ("no node of this Ray cluster can ever run this task: it asks for "
                   "{CPU=1, GPU=1}, no node has GPU (2 nodes alive; the cluster does not "
                   "autoscale). Change the task's resources, or give the cluster a node type "
                   "that has them.")
    memory = infeasible_reason({"memory": 100.0 * 1024**4}, nodes, fixed)
    assert "memory=100TiB}, memory: at most 8GiB on one node" in memory
    split = infeasible_reason({"zone_a": 1, "GPU": 1}, {"a": {"zone_a": 1}, "b": {"GPU": 1}},
                              fixed)
    assert "and no single node has all of it" in split


def test_node_types_the_autoscaler_can_add_count() -> None:
    types = NodeTypes({"gpu": {"GPU": 1, "a10g": 1}})  # CPUs left to the instance type
    assert infeasible_reason({"CPU": 4, "GPU": 1}, {"head": {"CPU": 0.0}}, types) is None
    reason = infeasible_reason({"CPU": 1, "a10g": 2}, {"head": {"CPU": 0.0}}, types)
    assert reason and "a10g: at most 1 on one node" in reason
    assert "the autoscaler can add gpu {GPU=1, a10g=1}" in reason


def test_unknown_node_types_or_checks_off_never_fail_a_task() -> None:
    nodes = {"head": {"CPU": 1.0}}
    assert infeasible_reason({"GPU": 8}, nodes, NodeTypes()) is None  # e.g. KubeRay's sidecar
    assert infeasible_reason({"GPU": 8}, nodes, NodeTypes(enabled=False)) is None


def test_a_fan_out_requests_its_capacity_once_and_releases_it() -> None:
    requests: list[list[dict]] = []
    planner = CapacityPlanner(requests.append, min_fanout=4)
    one = {"CPU": 1.0, "zone": 1.0}
    for i in range(3):
        planner.submitted(("small", i), "ex-small", one)
    assert planner.update() and requests == [[]]  # the first update clears any stale request
    assert not planner.update()  # below the threshold: Ray's own pace
    for i in range(6):
        planner.submitted(("big", i), "ex-big", one)
    assert planner.update() and requests[-1] == [one] * 6
    planner.settled(("big", 0))
    assert not planner.update()  # the request holds while the fan-out drains
    for i in range(1, 6):
        planner.settled(("big", i))
    assert planner.update() and requests[-1] == []  # drained: released
    for i in range(3):
        planner.settled(("small", i))
    assert not planner.update() and len(requests) == 3


def test_concurrent_fan_outs_share_one_request() -> None:
    requests: list[list[dict]] = []
    planner = CapacityPlanner(requests.append, min_fanout=2)
    cpu, gpu = {"CPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}
    for i in range(2):
        planner.submitted(("a", i), "A", cpu)
    planner.update()
    for i in range(3):
        planner.submitted(("b", i), "B", gpu)
    planner.update()
    assert sorted(map(json.dumps, requests[-1])) == sorted(map(json.dumps, [cpu] * 2 + [gpu] * 3))
    for i in range(2):
        planner.settled(("a", i))
    planner.update()
    assert requests[-1] == [gpu] * 3  # A's share withdrawn, B's kept


def test_storage_from_the_head_nodes_environment() -> None:
    env = {"KRAY_STORAGE_URL": "s3://bucket/kray",
           "KRAY_STORAGE_OPTIONS": '{"client_kwargs": {"region_name": "eu-west-1"}}'}
    assert storage_from_env(None, {}, env) == (
        "s3://bucket/kray", {"client_kwargs": {"region_name": "eu-west-1"}})
    assert storage_from_env("gs://mine/x", {"token": "t"}, env) == ("gs://mine/x", {"token": "t"})
    assert storage_from_env(None, {}, {}) == (None, {})
    with pytest.raises(ValueError):
        storage_from_env(None, {}, {"KRAY_STORAGE_URL": "s3://b/k", "KRAY_STORAGE_OPTIONS": "[]"})


def test_dashboard_links_for_each_attempt() -> None:
    node = "ab" * 28
    execution = {"taskRuns": [
        {"id": "r1", "taskId": "t", "meta": {"rayTasks": ["c0ffee" * 6 + "01000000",
                                                          "beef" * 10 + "01000000"]},
         "attempts": [{"state": "FAILED", "node": None}, {"state": "SUCCESS", "node": node}]},
        {"id": "r2", "taskId": "flowable", "meta": {}, "attempts": []}]}
    links = dashboard_links(execution, "http://ray:8265/")
    assert [link["attempt"] for link in links] == [1, 2]
    assert links[0]["task"] == f"http://ray:8265/#/jobs/01000000/tasks/{'c0ffee' * 6}01000000"
    assert links[0]["node"] is None
    assert links[1]["node"] == f"http://ray:8265/#/cluster/nodes/{node}"
