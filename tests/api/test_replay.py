"""Replay from a task run, stepped in-process (no Ray): which task runs the new execution
keeps, and that it ends well without running them again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kray.engine.execution import Execution
from kray.engine.state import State
from kray.flow.parse import parse_flow
from kray.inline import InlineRunner
from kray.replay import seed_replay

K = "io.kestra.plugin.core"
SOURCE = f"""id: replayed
namespace: tests.replay
tasks:
  - id: par
    type: {K}.flow.Parallel
    tasks:
      - id: seq
        type: {K}.flow.Sequential
        tasks:
          - id: a1
            type: {K}.debug.Return
            format: a1
          - id: a2
            type: {K}.debug.Return
            format: "{{{{ kv('go') }}}}"
      - id: b1
        type: {K}.debug.Return
        format: b1
  - id: wd
    type: {K}.flow.WorkingDirectory
    tasks:
      - id: w1
        type: {K}.debug.Return
        format: w1
      - id: w2
        type: {K}.debug.Return
        format: "{{{{ kv('wd') }}}}"
  - id: last
    type: {K}.debug.Return
    format: "{{{{ outputs.a2.value }}}}-{{{{ outputs.w2.value }}}}"
"""


def replay(runner: InlineRunner, old: Execution, task_id: str, new_id: str) -> Execution:
    (flow,) = runner.flows.values()
    plan = runner.plan(flow)
    target = next(r for r in old.task_runs if r.task_id == task_id)
    runner.advance_clock(timedelta(minutes=1))
    ex = runner.start(flow, old.inputs, execution_id=new_id, resolved=True)
    seed_replay(ex, old, target.id, plan)
    runner.drain()
    return runner.executions[new_id]


def by_task(ex: Execution) -> dict[str, object]:
    return {r.task_id: r for r in ex.task_runs}


def test_replay_from_a_run_inside_parallel_and_sequential(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path)
    old = runner.run(parse_flow(SOURCE))
    assert old.state.current == State.FAILED
    runner.kv.set("tests.replay", "go", "A")
    runner.kv.set("tests.replay", "wd", "W")
    new = replay(runner, old, "a2", "replay-a2")
    assert new.state.current == State.SUCCESS, new.error
    assert (new.parent_id, new.original_id) == (old.id, old.id)
    before, after = by_task(old), by_task(new)
    assert after["last"].outputs == {"value": "A-W"}  # type: ignore[attr-defined]
    # a1 and b1 ended before a2 was created: kept as they were, not run again.
    for task in ("a1", "b1"):
        assert after[task].state.start == before[task].state.start  # type: ignore[attr-defined]
        assert len(after[task].attempts) == 1  # type: ignore[attr-defined]
        assert after[task].id != before[task].id  # type: ignore[attr-defined]
    # a2 ran again, in the new execution; its parents were resumed, not recreated.
    assert after["a2"].state.start > before["a2"].state.start  # type: ignore[attr-defined]
    assert after["par"].state.start > before["par"].state.start  # type: ignore[attr-defined]
    assert all(r.execution_id == new.id for r in new.task_runs)


def test_replay_inside_a_working_directory_replays_the_directory(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path)
    runner.kv.set("tests.replay", "go", "A")
    old = runner.run(parse_flow(SOURCE))
    assert old.state.current == State.FAILED and by_task(old)["w2"].state.current == "FAILED"
    runner.kv.set("tests.replay", "wd", "W")
    new = replay(runner, old, "w2", "replay-w2")
    assert new.state.current == State.SUCCESS, new.error
    before, after = by_task(old), by_task(new)
    # Its shared folder is gone: the whole WorkingDirectory runs again, w1 included.
    assert after["w1"].state.start > before["w1"].state.start  # type: ignore[attr-defined]
    assert after["a2"].state.start == before["a2"].state.start  # type: ignore[attr-defined]
