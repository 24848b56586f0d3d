"""Golden flows: each YAML file under valid/ starts with a comment block holding its
expectations, e.g.

    # expect:
    #   state: SUCCESS            # the execution's final state
    #   taskRuns: 3               # how many task runs in all
    #   states: {t1: SUCCESS}     # state of the (last) run of a task id
    #   outputs: {t1: {value: x}} # a subset of the Kestra-style outputs map
    #   flowOutputs: {o: x}       # a subset of the flow's outputs
    #   attempts: {t1: 3}         # attempts of the (last) run of a task id
    #   labels: {k: v}            # a subset of the final labels
    #   inputs: {name: world}     # inputs to run with (not an expectation)
    #   flows: [other.yaml]       # other golden flows to load (subflows)
    #   ray: false                # skip in the Ray end-to-end suite
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
VALID = sorted((HERE / "valid").glob("*.yaml"))
INVALID = sorted((HERE / "invalid").glob("*.yaml"))


def expectations(path: Path) -> dict[str, Any]:
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line[1:].removeprefix(" "))
    data = yaml.safe_load("\n".join(header)) or {}
    return data.get("expect", {})


def outputs_map(execution: dict) -> dict[str, Any]:
    """Task outputs addressed the Kestra way (ForEach children by value)."""
    out: dict[str, Any] = {}
    for tr in execution["taskRuns"]:
        if not tr["outputs"]:
            continue
        path = (tr.get("meta") or {}).get("vp")
        if not path:
            out[tr["taskId"]] = tr["outputs"]
            continue
        node = out.setdefault(tr["taskId"], {})
        for v in path[:-1]:
            node = node.setdefault(str(v), {})
        node[str(path[-1])] = tr["outputs"]
    return out


def subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(v, actual[k]) for k, v in expected.items())
    return expected == actual


def check(execution: dict, expect: dict[str, Any]) -> None:
    """Assert an execution (``Execution.to_dict()`` or ``kray run --json``) meets ``expect``."""
    where = f"execution {execution['id']} ({execution['state']}, error={execution.get('error')})"
    assert execution["state"] == expect.get("state", "SUCCESS"), where
    runs = execution["taskRuns"]
    if "taskRuns" in expect:
        ids = [(r["taskId"], r["value"]) for r in runs]
        assert len(runs) == expect["taskRuns"], f"{where}: task runs {ids}"
    last: dict[str, dict] = {}
    for r in runs:
        last[r["taskId"]] = r
    for task_id, state in (expect.get("states") or {}).items():
        if state is None:
            assert task_id not in last, f"{where}: {task_id} should not have run"
            continue
        assert task_id in last, f"{where}: {task_id} never ran"
        assert last[task_id]["state"] == state, f"{where}: {task_id} {last[task_id]}"
    for task_id, n in (expect.get("attempts") or {}).items():
        assert len(last[task_id]["attempts"]) == n, f"{where}: {task_id} {last[task_id]}"
    if "outputs" in expect:
        actual = outputs_map(execution)
        assert subset(expect["outputs"], actual), f"{where}: outputs {actual}"
    if "flowOutputs" in expect:
        assert subset(expect["flowOutputs"], execution.get("outputs") or {}), \
            f"{where}: flow outputs {execution.get('outputs')}"
    if "labels" in expect:
        assert subset(expect["labels"], execution.get("labels") or {}), where
