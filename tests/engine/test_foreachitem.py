"""``ForEachItem``: one subflow execution per batch, through the in-process runner with real
child flows, real storage and the real template engine; once on Ray."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path

import pytest

from kray.engine import events as ev
from kray.engine.execution import Execution
from kray.errors import FlowValidationError
from kray.flow.parse import parse_flow
from kray.inline import InlineRunner

CHILD = """
id: child
namespace: fei
inputs:
  - id: file
    type: FILE
  - id: n
    type: INT
tasks:
  - id: lines
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.file) | trim }}"
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ 'boom' in read(inputs.file) }}"
    errorMessage: "batch {{ inputs.n }} exploded"
outputs:
  - id: text
    type: STRING
    value: "{{ inputs.n }}:{{ outputs.lines.value }}"
"""

QUIET_CHILD = """
id: quiet
namespace: fei
inputs:
  - id: file
    type: FILE
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1M
"""


def parent(content: str, **props: object) -> str:
    each = {"id": "each", "type": "io.kestra.plugin.core.flow.ForEachItem",
            "items": "{{ outputs.write.uri }}", "namespace": "fei", "flowId": "child",
            "inputs": {"file": "{{ taskrun.items }}", "n": "{{ taskrun.iteration }}"}, **props}
    flow = {"id": "parent", "namespace": "fei",
            "tasks": [{"id": "write", "type": "io.kestra.plugin.core.storage.Write",
                       "content": content}, each]}
    return json.dumps(flow)  # JSON is YAML


def run(tmp_path: Path, source: str, *children: str) -> tuple[InlineRunner, Execution]:
    runner = InlineRunner(tmp_path, flows=[parse_flow(c) for c in (children or (CHILD,))])
    return runner, runner.run(parse_flow(source))


def runs(execution: Execution, task_id: str) -> list:
    return [r for r in execution.task_runs if r.task_id == task_id]


def children_of(runner: InlineRunner, execution: Execution) -> list[Execution]:
    ids = [r.outputs["executionId"] for r in runs(execution, "each_items")]
    return [runner.executions[i] for i in ids]


def test_one_subflow_per_batch(tmp_path: Path) -> None:
    runner, ex = run(tmp_path, parent("a\nb\nc\nd\ne\n", batch={"rows": 2}))
    assert ex.state.current == "SUCCESS", ex.error
    each = runs(ex, "each")[0]
    assert each.outputs["numberOfBatches"] == 3
    assert each.outputs["iterations"] == {"SUCCESS": 3}
    batches = runs(ex, "each_items")
    assert [b.value for b in batches] == [0, 1, 2]
    assert [b.outputs["outputs"]["text"] for b in batches] == ["1:a\nb", "2:c\nd", "3:e"]
    # each child got its own batch file, as a FILE input
    files = [c.inputs["file"] for c in children_of(runner, ex)]
    assert [runner.storage.read(f) for f in files] == [b"a\nb\n", b"c\nd\n", b"e\n"]
    assert all(c.parent_task_run is not None for c in children_of(runner, ex))
    # subflow outputs merged, one JSON line per batch, also as each_merge.subflowOutputs
    merged = runner.storage.read(each.outputs["uri"]).decode().splitlines()
    assert [json.loads(line) for line in merged] == [
        {"text": "1:a\nb"}, {"text": "2:c\nd"}, {"text": "3:e"}]
    assert runs(ex, "each_merge")[0].outputs["subflowOutputs"] == each.outputs["uri"]
    assert [r.task_id for r in ex.task_runs] == [
        "write", "each", "each_split", "each_items", "each_items", "each_items", "each_merge"]


@pytest.mark.parametrize("batch, sizes", [
    ({}, [1, 1, 1, 1]),
    ({"partitions": 2}, [2, 2]),
    ({"bytes": 4}, [2, 2]),
    ({"rows": "{{ 1 + 2 }}"}, [3, 1]),
])
def test_batch_modes(tmp_path: Path, batch: dict, sizes: list[int]) -> None:
    runner, ex = run(tmp_path, parent("a\nb\nc\nd\n", batch=batch))
    assert ex.state.current == "SUCCESS", ex.error
    files = [c.inputs["file"] for c in children_of(runner, ex)]
    assert [len(runner.storage.read(f).splitlines()) for f in files] == sizes


def test_empty_file_makes_no_batch(tmp_path: Path) -> None:
    _, ex = run(tmp_path, parent(""))
    assert ex.state.current == "SUCCESS", ex.error
    assert runs(ex, "each")[0].outputs == {"numberOfBatches": 0, "iterations": {}}
    assert runs(ex, "each_items") == [] and runs(ex, "each_merge") == []


def test_failed_batch_fails_the_task_but_every_batch_runs(tmp_path: Path) -> None:
    _, ex = run(tmp_path, parent("a\nboom\nc\n"))
    assert ex.state.current == "FAILED"
    each = runs(ex, "each")[0]
    assert each.state.current == "FAILED"
    assert each.outputs["iterations"] == {"SUCCESS": 2, "FAILED": 1}
    assert [b.state.current for b in runs(ex, "each_items")] == ["SUCCESS", "FAILED", "SUCCESS"]


def test_transmit_failed_false(tmp_path: Path) -> None:
    _, ex = run(tmp_path, parent("a\nboom\n", transmitFailed=False))
    assert ex.state.current == "SUCCESS", ex.error
    assert runs(ex, "each")[0].outputs["iterations"] == {"SUCCESS": 1, "FAILED": 1}


def test_no_wait(tmp_path: Path) -> None:
    runner, ex = run(tmp_path, parent("a\nb\n", wait=False))
    assert ex.state.current == "SUCCESS", ex.error
    each = runs(ex, "each")[0]
    assert each.outputs == {"numberOfBatches": 2, "iterations": {"CREATED": 2}}
    assert runs(ex, "each_merge") == []
    # the children ran on their own, unattached
    assert [c.state.current for c in children_of(runner, ex)] == ["SUCCESS", "SUCCESS"]
    assert all(c.parent_task_run is None for c in children_of(runner, ex))


@pytest.mark.parametrize("limit, overlapping", [(0, True), (1, False)])
def test_concurrency_limit(tmp_path: Path, limit: int, overlapping: bool) -> None:
    source = parent("a\nb\nc\n", flowId="quiet", inputs={"file": "{{ taskrun.items }}"},
                    concurrencyLimit=limit)
    runner, ex = run(tmp_path, source, QUIET_CHILD)
    assert ex.state.current == "SUCCESS", ex.error
    kids = children_of(runner, ex)
    starts = [k.state.start for k in kids]
    if overlapping:
        assert len(set(starts)) == 1  # all started at once
    else:
        for before, after in itertools.pairwise(kids):
            assert after.state.start >= before.state.end
        assert kids[-1].state.end - kids[0].state.start >= timedelta(minutes=3)


def test_labels_and_inherit_labels(tmp_path: Path) -> None:
    source = json.loads(parent("a\nb\n", labels={"batch": "b{{ taskrun.iteration }}"},
                               inheritLabels=True))
    source["labels"] = {"team": "data"}
    runner, ex = run(tmp_path, json.dumps(source))
    assert [c.labels for c in children_of(runner, ex)] == [
        {"team": "data", "batch": "b1"}, {"team": "data", "batch": "b2"}]


def test_inside_a_foreach_outputs_stay_apart(tmp_path: Path) -> None:
    source = {
        "id": "nested", "namespace": "fei",
        "tasks": [{
            "id": "loop", "type": "io.kestra.plugin.core.flow.ForEach",
            "values": ["x", "y"],
            "tasks": [
                {"id": "write", "type": "io.kestra.plugin.core.storage.Write",
                 "content": "{{ taskrun.value }}1\n{{ taskrun.value }}2\n"},
                {"id": "each", "type": "io.kestra.plugin.core.flow.ForEachItem",
                 "items": "{{ outputs.write[taskrun.value].uri }}", "namespace": "fei",
                 "flowId": "child",
                 "inputs": {"file": "{{ taskrun.items }}", "n": "{{ taskrun.iteration }}"}},
                {"id": "show", "type": "io.kestra.plugin.core.debug.Return",
                 "format": "{{ read(outputs.each[taskrun.value].uri) | trim }}"},
            ]}]}
    _, ex = run(tmp_path, json.dumps(source))
    assert ex.state.current == "SUCCESS", ex.error
    shown = {r.value: r.outputs["value"] for r in runs(ex, "show")}
    assert shown == {"x": '{"text":"1:x1"}\n{"text":"2:x2"}',
                     "y": '{"text":"1:y1"}\n{"text":"2:y2"}'}


def test_bad_items_fail_in_the_split(tmp_path: Path) -> None:
    source = json.loads(parent("a\n"))
    source["tasks"][1]["items"] = "/etc/passwd"
    _, ex = run(tmp_path, json.dumps(source))
    assert ex.state.current == "FAILED"
    split = runs(ex, "each_split")[0]
    assert split.state.current == "FAILED" and "kray://" in (split.error or "")
    assert runs(ex, "each_items") == []


def test_missing_child_flow(tmp_path: Path) -> None:
    _, ex = run(tmp_path, parent("a\n", flowId="nope"))
    assert ex.state.current == "FAILED"
    assert runs(ex, "each")[0].outputs["iterations"] == {"FAILED": 1}


def test_kill_cascades_to_the_subflows(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path, flows=[parse_flow(QUIET_CHILD)])
    flow = parse_flow(parent("a\nb\n", flowId="quiet", inputs={"file": "{{ taskrun.items }}"}))
    runner.add_flow(flow)
    ex = runner.start(flow, {})
    while runner._events:  # run until both children are paused, before any timer fires
        runner._step(*runner._events.popleft())
    kids = children_of(runner, ex)
    assert [k.state.current for k in kids] == ["PAUSED", "PAUSED"]
    ex = runner.send(ex.id, ev.Kill())
    assert ex.state.current == "KILLED"
    assert [k.state.current for k in kids] == ["KILLED", "KILLED"]


# -- validation ----------------------------------------------------------------------------

def test_declared_id_colliding_with_a_hidden_one() -> None:
    source = json.loads(parent("a\n"))
    source["tasks"].append({"id": "each_split", "type": "io.kestra.plugin.core.log.Log",
                            "message": "x"})
    with pytest.raises(FlowValidationError) as info:
        parse_flow(json.dumps(source))
    assert "task id 'each_split' is also the id of a task that a flowable adds" in str(
        info.value)


def test_batch_takes_one_mode_and_ids_leave_room() -> None:
    with pytest.raises(FlowValidationError, match="at most one of"):
        parse_flow(parent("a\n", batch={"rows": 1, "partitions": 2}))
    source = json.loads(parent("a\n"))
    source["tasks"][1]["id"] = "e" * 95
    with pytest.raises(FlowValidationError, match="at most 94 characters"):
        parse_flow(json.dumps(source))


def test_hidden_children_are_indexed_by_the_plan() -> None:
    from kray.engine.plan import Plan
    from kray.templating import TemplateEngine

    plan = Plan.compile(parse_flow(parent("a\n")), TemplateEngine())
    assert {"each_split", "each_items", "each_merge"} <= set(plan.tasks)
    assert plan.parents["each_split"] == "each"
    assert plan.refs["each_split"] == frozenset({"write"})
    assert plan.refs["each_merge"] == frozenset({"each_items"})


# -- on Ray ----------------------------------------------------------------------------------

@pytest.mark.ray
def test_on_ray(executor, data_dir: Path, tmp_path: Path) -> None:
    from kray.runner import RunOptions, run_flow

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "child.yaml").write_text(CHILD)
    path = tmp_path / "parent.yaml"
    path.write_text(parent("a\nb\nc\n", batch={"rows": 2}))
    execution = run_flow(path, RunOptions(flows_dir=str(flows), data_dir=str(data_dir)))
    assert execution["state"] == "SUCCESS", execution.get("error")
    each = next(t for t in execution["taskRuns"] if t["taskId"] == "each")
    assert each["outputs"]["numberOfBatches"] == 2
    assert each["outputs"]["iterations"] == {"SUCCESS": 2}
    assert [t["outputs"]["outputs"]["text"] for t in execution["taskRuns"]
            if t["taskId"] == "each_items"] == ["1:a\nb", "2:c"]
