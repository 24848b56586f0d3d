"""Ray's fake autoscaling cluster (``local.start_head(autoscaling=...)``): a head without CPUs
and a node type ``fan_node`` {CPU: 2, fan: 2}, at most 3, idle after 6 s.

A ForEach of 6 children that each need ``fan: 1`` makes the cluster add nodes; kray asks the
autoscaler for the whole fan-out at once, releases the request when it has drained, and the
idle nodes go. A task asking for more than any node type has fails at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.local import Head, fake_autoscaling_config, run_scenario, start_head

pytestmark = pytest.mark.slow

WIDTH = 6
NODE_TYPES = {"fan_node": {"resources": {"CPU": 2, "fan": 2, "object_store_memory": 100 * 2**20},
                           "min_workers": 0, "max_workers": 3}}


@pytest.fixture(scope="module")
def head(short_tmp: Path) -> Iterator[Head]:
    head = start_head(
        short_tmp / "ray", num_cpus=0,
        autoscaling=lambda port: fake_autoscaling_config(port, 0, NODE_TYPES, max_workers=3,
                                                         idle_timeout_minutes=0.1),
        env={"KRAY_CAPACITY_REQUESTS": "4"})  # a fan-out of 4 in flight asks for capacity
    yield head
    head.stop()


@pytest.fixture(scope="module")
def report(head: Head, short_tmp: Path) -> dict[str, Any]:
    result = run_scenario("autoscale", {"address": head.address, "data_dir": str(short_tmp / "d"),
                                        "width": WIDTH, "scale_down_timeout": 90},
                          token=head.token, timeout=420)
    logs = next((head.temp_dir).glob("session_*/logs/monitor.log")).read_text()
    result["launches"] = [int(n) for n in re.findall(r"Queue (\d+) new nodes for launch", logs)]
    result["removals"] = [int(n) for n in re.findall(r"Removing (\d+) nodes of type fan_node",
                                                     logs)]
    return result


def after(samples: list[dict[str, Any]], t: float) -> list[dict[str, Any]]:
    return [s for s in samples if s.get("t", 0) >= t and "error" not in s]


def test_node_types_come_from_the_autoscaler(report: dict[str, Any], head: Head) -> None:
    info = report["info"]
    assert info["nodeTypes"] == {"fan_node": {"CPU": 2.0, "fan": 2.0}}
    assert info["nodeTypesSource"].endswith("autoscaling.json")
    assert info["fixed"] is False and info["minFanout"] == 4


def test_a_fan_out_adds_nodes_in_one_step(report: dict[str, Any]) -> None:
    fanout = report["fanout"]
    assert fanout["state"] == "SUCCESS", fanout
    # no node had `fan` when the tasks were submitted: the check consulted the node types
    assert fanout["runs"]["work"]["nodes"][0] is not None
    assert report["requested"] == [{"CPU": 1.0, "fan": 1.0}] * WIDTH
    assert report["launches"][0] == 3  # the autoscaler launched all three nodes at once
    # (on a loaded machine a node slow to register may be replaced: then more than 3 existed)
    assert max(s.get("workers", 0) for s in report["samples"]) >= 3


def test_the_request_is_released_and_idle_nodes_go(report: dict[str, Any]) -> None:
    tail = after(report["samples"], report["ended"] + 0.5)
    assert tail and all(s["request"] == 0 for s in tail)  # request_resources(bundles=[])
    assert tail[-1]["workers"] == 0, tail[-1]
    assert sum(report["removals"]) == report["workerNodesEver"] >= 3


def test_more_than_any_node_type_has_fails_at_once(report: dict[str, Any]) -> None:
    too_big = report["tooBig"]
    assert too_big["state"] == "FAILED"
    assert too_big["seconds"] < 15
    error = too_big["runs"]["three"]["error"]
    assert "it asks for {CPU=1, fan=3}, fan: at most 2 on one node" in error
    assert "the autoscaler can add fan_node {CPU=2, fan=2}" in error
