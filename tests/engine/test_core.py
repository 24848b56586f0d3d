"""The pure core, stepped event by event: no Ray, no I/O, a clock we choose."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kray.engine import events as ev
from kray.engine.core import decide, new_execution
from kray.engine.plan import Plan
from kray.engine.state import State, StateValue
from kray.errors import IllegalTransition
from kray.flow.parse import parse_flow
from kray.templating import TemplateEngine

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Stepper:
    def __init__(self, source: str, inputs: dict | None = None):
        self.plan = Plan.compile(parse_flow(source), TemplateEngine())
        self.ex = new_execution(self.plan, "ex1", inputs or {}, T0)
        self.now = T0

    def send(self, event, after: float = 0.0) -> list:
        self.now += timedelta(seconds=after)
        _, commands = decide(self.plan, self.ex, event, self.now)
        return commands

    def ok(self, cmd: ev.SubmitTask, outputs: dict | None = None, after: float = 0.1) -> list:
        return self.send(ev.TaskResult(cmd.task_run_id, cmd.attempt, State.SUCCESS,
                                       outputs or {}), after)

    def fail(self, cmd: ev.SubmitTask, error: str = "boom", after: float = 0.1) -> list:
        return self.send(ev.TaskResult(cmd.task_run_id, cmd.attempt, State.FAILED, {}, error),
                         after)

    def run(self, task_id: str):
        return next(r for r in self.ex.task_runs if r.task_id == task_id)


def submits(commands: list) -> list[ev.SubmitTask]:
    return [c for c in commands if isinstance(c, ev.SubmitTask)]


def only(commands: list, kind: type):
    found = [c for c in commands if isinstance(c, kind)]
    assert len(found) == 1, commands
    return found[0]


CHAIN = """id: chain
namespace: core
tasks:
  - {id: a, type: io.kestra.plugin.core.debug.Return, format: A}
  - {id: b, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.a.value }}B"}
  - {id: c, type: io.kestra.plugin.core.log.Log, message: "{{ outputs.b.value }}"}
"""


def test_sequential_submits_one_task_at_a_time_and_ends() -> None:
    s = Stepper(CHAIN)
    first = only(s.send(ev.Start()), ev.SubmitTask)
    assert first.task_id == "a" and first.attempt == 1
    assert s.ex.state.current == State.RUNNING
    second = only(s.ok(first, {"value": "A"}), ev.SubmitTask)
    assert second.task_id == "b"
    assert second.variables["outputs"] == {"a": {"value": "A"}}
    third = only(s.ok(second, {"value": "AB"}), ev.SubmitTask)
    # c reads only b's outputs, so only b's are shipped to its worker
    assert third.variables["outputs"] == {"b": {"value": "AB"}}
    ended = only(s.ok(third), ev.ExecutionEnded)
    assert ended.state == State.SUCCESS
    assert s.ex.state.current == State.SUCCESS
    assert [h[0] for h in s.ex.state.history] == [State.CREATED, State.RUNNING, State.SUCCESS]


def test_stale_and_duplicate_results_are_ignored() -> None:
    s = Stepper(CHAIN)
    first = only(s.send(ev.Start()), ev.SubmitTask)
    assert s.send(ev.TaskResult(first.task_run_id, 2, State.SUCCESS)) == []
    assert s.run("a").state.current == State.RUNNING
    s.ok(first)
    assert s.ok(first) == []  # delivered twice (at-least-once): the second changes nothing
    assert len(s.run("a").attempts) == 1


def test_retry_waits_its_interval_then_submits_a_new_attempt() -> None:
    s = Stepper("""id: r
namespace: core
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
    retry: {type: constant, interval: PT10S, maxAttempt: 2}
""")
    first = only(s.send(ev.Start()), ev.SubmitTask)
    timer = only(s.fail(first, after=1), ev.SetTimer)
    assert timer.at == s.now + timedelta(seconds=10)
    assert s.run("t").state.current == State.RETRYING
    again = only(s.send(ev.TimerFired(timer.key), after=10), ev.SubmitTask)
    assert again.attempt == 2 and again.task_run_id == first.task_run_id
    ended = only(s.fail(again), ev.ExecutionEnded)
    assert ended.state == State.FAILED
    assert [a.state.current for a in s.run("t").attempts] == [State.FAILED, State.FAILED]


def test_exponential_retry_delays_grow_and_cap() -> None:
    s = Stepper("""id: r
namespace: core
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: x
    retry: {type: exponential, interval: PT1S, maxInterval: PT3S, maxAttempt: 4}
""")
    cmd = only(s.send(ev.Start()), ev.SubmitTask)
    delays = []
    for _ in range(3):
        timer = only(s.fail(cmd, after=0), ev.SetTimer)
        delays.append((timer.at - s.now).total_seconds())
        cmd = only(s.send(ev.TimerFired(timer.key), after=delays[-1]), ev.SubmitTask)
    assert delays == [1.0, 2.0, 3.0]


def test_timeout_cancels_the_attempt_and_fails_the_run() -> None:
    s = Stepper("""id: t
namespace: core
tasks:
  - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H, timeout: PT2S}
""")
    commands = s.send(ev.Start())
    submit, timer = only(commands, ev.SubmitTask), only(commands, ev.SetTimer)
    assert timer.key == f"timeout:{submit.task_run_id}:1"
    commands = s.send(ev.TimerFired(timer.key), after=2)
    assert only(commands, ev.CancelTask).task_run_id == submit.task_run_id
    assert only(commands, ev.ExecutionEnded).state == State.FAILED
    assert "timed out" in s.run("slow").error
    assert s.ok(submit) == []  # the killed worker's late answer changes nothing


def test_kill_cancels_running_work_and_nothing_starts_after() -> None:
    s = Stepper("""id: k
namespace: core
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {id: x, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
      - {id: y, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
""")
    started = submits(s.send(ev.Start()))
    assert {c.task_id for c in started} == {"x", "y"}
    commands = s.send(ev.Kill())
    assert {c.task_run_id for c in commands if isinstance(c, ev.CancelTask)} == {
        c.task_run_id for c in started}
    assert only(commands, ev.ExecutionEnded).state == State.KILLED
    assert s.ok(started[0]) == []
    assert {r.task_id: r.state.current for r in s.ex.task_runs} == {
        "par": State.KILLED, "x": State.KILLED, "y": State.KILLED}


def test_parallel_respects_its_concurrency_limit() -> None:
    tasks = "\n".join(f"      - {{id: p{i}, type: io.kestra.plugin.core.log.Log, message: m}}"
                      for i in range(5))
    s = Stepper(f"""id: p
namespace: core
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
{tasks}
""")
    running = submits(s.send(ev.Start()))
    assert [c.task_id for c in running] == ["p0", "p1"]
    nxt = submits(s.ok(running[0]))
    assert [c.task_id for c in nxt] == ["p2"]


def test_pause_resume_and_exit() -> None:
    s = Stepper("""id: p
namespace: core
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume: [{id: ok, type: BOOLEAN}]
  - {id: stop, type: io.kestra.plugin.core.execution.Exit, state: WARNING}
  - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
""")
    assert s.send(ev.Start()) == []
    assert s.ex.state.current == State.PAUSED
    exit_task = only(s.send(ev.Resume({"ok": True}), after=5), ev.SubmitTask)
    assert s.run("gate").outputs == {"onResume": {"ok": True}}
    assert s.ex.state.current == State.RUNNING
    commands = s.send(ev.TaskResult(exit_task.task_run_id, 1, State.SUCCESS, {},
                                    effects={"exit": "WARNING"}))
    assert only(commands, ev.ExecutionEnded).state == State.WARNING
    assert "never" not in {r.task_id for r in s.ex.task_runs}


def test_subflow_gets_a_deterministic_child_id_and_waits_for_it() -> None:
    source = """id: parent
namespace: core
tasks:
  - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: core, flowId: child,
     inputs: {n: "{{ 1 + 1 }}"}}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: "{{ outputs.call.outputs.r }}"}
"""
    one, two = Stepper(source), Stepper(source)
    create = only(one.send(ev.Start()), ev.CreateSubflow)
    assert create == only(two.send(ev.Start()), ev.CreateSubflow)  # same events, same ids
    assert (create.namespace, create.flow_id, create.inputs) == ("core", "child", {"n": "2"})
    after = only(one.send(ev.SubflowEnded(create.task_run_id, create.execution_id,
                                          State.SUCCESS, {"r": "done"})), ev.SubmitTask)
    assert after.variables["outputs"]["call"]["outputs"] == {"r": "done"}


def test_restart_gives_failed_runs_a_new_attempt_with_the_same_id() -> None:
    s = Stepper(CHAIN)
    first = only(s.send(ev.Start()), ev.SubmitTask)
    assert only(s.fail(first), ev.ExecutionEnded).state == State.FAILED
    again = only(s.send(ev.Restart(), after=60), ev.SubmitTask)
    assert (again.task_run_id, again.attempt) == (first.task_run_id, 2)
    assert s.ex.state.current == State.RUNNING
    assert State.RESTARTED in [h[0] for h in s.ex.state.history]


def test_batched_results_make_one_pass() -> None:
    tasks = "\n".join(f"      - {{id: p{i}, type: io.kestra.plugin.core.log.Log, message: m}}"
                      for i in range(3))
    s = Stepper(f"""id: b
namespace: core
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
{tasks}
""")
    running = submits(s.send(ev.Start()))
    batch = ev.Batch(tuple(ev.TaskResult(c.task_run_id, 1, State.SUCCESS) for c in running))
    assert only(s.send(batch), ev.ExecutionEnded).state == State.SUCCESS


def test_illegal_transitions_raise() -> None:
    value = StateValue.new(T0)
    with pytest.raises(IllegalTransition):
        value.to(State.SUCCESS, T0)  # CREATED must run first
    done = value.to(State.RUNNING, T0).to(State.SUCCESS, T0)
    with pytest.raises(IllegalTransition):
        done.to(State.RUNNING, T0)
    assert done.end == T0 and done.current.terminal
    skipped = value.to(State.SKIPPED, T0)
    with pytest.raises(IllegalTransition):
        skipped.to(State.RESTARTED, T0)


def test_lost_attempts_are_recorded_and_run_again() -> None:
    s = Stepper(CHAIN)
    cmd = only(s.send(ev.Start()), ev.SubmitTask)
    for attempt in (2, 3, 4):  # up to three lost attempts run again, whatever the policy
        cmd = only(s.send(ev.TaskResult(cmd.task_run_id, cmd.attempt, State.FAILED, {},
                                        "the worker was lost (NodeDiedError)", lost=True)),
                   ev.SubmitTask)
        assert cmd.attempt == attempt
    assert s.run("a").attempts[0].state.current == State.FAILED
    assert "lost" in s.run("a").attempts[0].error
    commands = s.send(ev.TaskResult(cmd.task_run_id, cmd.attempt, State.FAILED, {}, "lost",
                                    lost=True))
    assert only(commands, ev.ExecutionEnded).state == State.FAILED
    assert len(s.run("a").attempts) == 4
