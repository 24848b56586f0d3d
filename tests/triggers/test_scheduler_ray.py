"""Triggers end to end, through the executor actor: a seconds schedule firing on its own,
stopAfter, Flow triggers with outputs and preconditions, and backfills that start each tick
exactly once, even after the executor is replaced by a new one on the same data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from kray.runner import follow
from kray.storage.repository import Repository
from kray.storage.triggers import load_states, save_states
from tests.triggers.helpers import search, trigger_context, wait_for

pytestmark = pytest.mark.ray

NS = "e2e.triggers"


def executions(ray: Any, executor: Any, flow_id: str) -> list[dict]:
    return search(ray, executor, NS, flow_id)


def context(ray: Any, executor: Any, flow_id: str, trigger_id: str) -> dict:
    return trigger_context(ray, executor, NS, flow_id, trigger_id)


def test_seconds_schedule_fires_on_its_own(ray_session, executor) -> None:
    ray = ray_session
    ray.get(executor.deploy.remote(f"""id: every_second
namespace: {NS}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.date }}}}|{{{{ trigger.next }}}}|{{{{ trigger.previous }}}}"
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
    labels: {{source: schedule}}
"""))
    try:
        started = wait_for(lambda: len(executions(ray, executor, "every_second")) >= 2
                           and executions(ray, executor, "every_second"), timeout=6,
                           what="two scheduled executions")
    finally:
        view = ray.get(executor.set_trigger_enabled.remote(NS, "every_second", "tick", False))
    assert view["triggerContext"]["disabled"] is True
    dates = []
    for doc in started[:2]:
        doc = follow(executor, doc["id"])
        assert doc["state"] == "SUCCESS" and doc["labels"]["source"] == "schedule"
        trigger = doc["trigger"]
        date = datetime.fromisoformat(trigger["date"])
        assert date.microsecond == 0
        assert datetime.fromisoformat(trigger["next"]) == date + timedelta(seconds=1)
        assert datetime.fromisoformat(trigger["previous"]) == date - timedelta(seconds=1)
        assert doc["taskRuns"][0]["outputs"]["value"] == \
            f"{trigger['date']}|{trigger['next']}|{trigger['previous']}"
        dates.append(date)
    assert dates[1] - dates[0] >= timedelta(seconds=1)
    settled = len(executions(ray, executor, "every_second"))
    time.sleep(1.5)
    assert len(executions(ray, executor, "every_second")) == settled  # disabled: no more


def test_stop_after_disables_the_trigger(ray_session, executor) -> None:
    ray = ray_session
    ray.get(executor.deploy.remote(f"""id: fails_once
namespace: {NS}
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: stop me
triggers:
  - id: tick
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
    stopAfter: [FAILED]
"""))
    try:
        ctx = wait_for(lambda: (c := context(ray, executor, "fails_once", "tick"))["disabled"]
                       and c, timeout=30, what="stopAfter to disable the trigger")
    finally:
        ray.get(executor.set_trigger_enabled.remote(NS, "fails_once", "tick", False))
    assert ctx["stoppedBy"]["state"] == "FAILED"
    count = len(executions(ray, executor, "fails_once"))
    time.sleep(1.5)
    assert len(executions(ray, executor, "fails_once")) == count


UPSTREAM = f"""id: upstream
namespace: {NS}
inputs:
  - id: n
    type: INT
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.n * 2 }}}}"
outputs:
  - id: doubled
    type: STRING
    value: "{{{{ outputs.make.value }}}}"
"""


def test_flow_trigger_chain_with_outputs(ray_session, executor) -> None:
    ray = ray_session
    ray.get(executor.deploy.remote(UPSTREAM))
    ray.get(executor.deploy.remote(f"""id: downstream
namespace: {NS}
inputs:
  - id: got
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.got }}}} from {{{{ trigger.flowId }}}} ({{{{ trigger.state }}}})"
triggers:
  - id: on_upstream
    type: io.kestra.plugin.core.trigger.Flow
    states: [SUCCESS]
    inputs:
      got: "{{{{ trigger.outputs.doubled }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {NS}
        flowId: upstream
"""))
    try:
        up = ray.get(executor.create_execution.remote(NS, "upstream", {"n": 21}))
        assert follow(executor, up["id"])["state"] == "SUCCESS"
        down_id = wait_for(lambda: context(ray, executor, "downstream", "on_upstream")
                           ["executionId"], what="the downstream execution")
        down = follow(executor, down_id)
        assert down["state"] == "SUCCESS"
        assert down["taskRuns"][0]["outputs"]["value"] == "42 from upstream (SUCCESS)"
        assert down["trigger"]["executionId"] == up["id"]
        assert down["trigger"]["namespace"] == NS and down["trigger"]["outputs"] == {
            "doubled": "42"}
    finally:
        ray.get(executor.set_trigger_enabled.remote(NS, "downstream", "on_upstream", False))


def test_preconditions_wait_for_every_upstream_flow(ray_session, executor) -> None:
    ray = ray_session
    for name in ("pre_a", "pre_b"):
        ray.get(executor.deploy.remote(f"""id: {name}
namespace: {NS}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: {name}
"""))
    ray.get(executor.deploy.remote(f"""id: pre_both
namespace: {NS}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "after {{{{ trigger.flowId }}}}"
triggers:
  - id: both
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      flows:
        - {{namespace: {NS}, flowId: pre_a, states: [SUCCESS]}}
        - {{namespace: {NS}, flowId: pre_b, states: [SUCCESS]}}
      timeWindow: {{type: SLIDING_WINDOW, window: PT1H}}
"""))
    try:
        a = ray.get(executor.create_execution.remote(NS, "pre_a", {}))
        follow(executor, a["id"])
        progress = wait_for(lambda: (context(ray, executor, "pre_both", "both")
                                     ["preconditions"] or {}).get("met"),
                            what="progress on the preconditions")
        assert list(progress) == [f"0:{NS}/pre_a"]
        assert context(ray, executor, "pre_both", "both")["executionId"] is None
        b = ray.get(executor.create_execution.remote(NS, "pre_b", {}))
        follow(executor, b["id"])
        fired = wait_for(lambda: context(ray, executor, "pre_both", "both")["executionId"],
                         what="the preconditions to fire")
        doc = follow(executor, fired)
        assert doc["taskRuns"][0]["outputs"]["value"] == "after pre_b"
        assert context(ray, executor, "pre_both", "both")["preconditions"]["met"] == {}
    finally:
        ray.get(executor.set_trigger_enabled.remote(NS, "pre_both", "both", False))


# -- exactly once across a restart ----------------------------------------------------------

YEARLY = f"""id: yearly
namespace: {NS}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.date }}}}"
triggers:
  - id: new_year
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@yearly"
    timezone: Europe/Paris
    recoverMissedSchedules: LAST
"""


def own_executor(ray: Any, data_dir: Path) -> Any:
    """An executor of its own (not the session's), on ``data_dir``."""
    from kray.executor import ExecutorService
    actor = ray.remote(ExecutorService).options(num_cpus=0, max_concurrency=1000).remote(
        {"data_dir": str(data_dir)})
    ray.get(actor.ping.remote())
    return actor


def backfill_done(ray: Any, actor: Any, start: str, end: str) -> dict:
    ray.get(actor.backfill.remote(NS, "yearly", "new_year", start, end))
    ctx = wait_for(lambda: (c := ray.get(actor.trigger.remote(NS, "yearly", "new_year"))
                            ["triggerContext"])["backfill"] is None and c,
                   what="the backfill to finish")
    return ctx["lastBackfill"]  # type: ignore[no-any-return]


def test_backfill_starts_each_tick_once_across_restarts(ray_session, tmp_path: Path) -> None:
    ray = ray_session
    first = own_executor(ray, tmp_path)
    ray.get(first.deploy.remote(YEARLY))
    done = backfill_done(ray, first, "2019-01-01T00:00:00", "2023-01-01T00:00:00")
    assert done["executions"] == 4
    docs = executions(ray, first, "yearly")
    assert sorted(d["trigger"]["date"] for d in docs) == [
        f"{y}-01-01T00:00:00+01:00" for y in (2019, 2020, 2021, 2022)]
    for doc in docs:
        assert follow(first, doc["id"])["state"] == "SUCCESS"
    # The same ticks again, from the same executor: nothing new.
    assert backfill_done(ray, first, "2019-01-01T00:00:00",
                         "2023-01-01T00:00:00")["executions"] == 0

    pid = ray.get(first.ping.remote())["pid"]
    ray.kill(first)
    wait_for(lambda: not psutil.pid_exists(pid), what="the first executor to exit")
    # As if it had been down since mid-2021: the persisted watermark is all it knows.
    with Repository(tmp_path / "kray.duckdb") as repo:
        (state,) = load_states(repo)
        state.watermark = datetime(2021, 6, 1, tzinfo=UTC)
        save_states(repo, [state])
    second = own_executor(ray, tmp_path)
    try:
        # recoverMissedSchedules: LAST: of the ticks missed since 2021, only this year's.
        this_year = str(datetime.now(UTC).year)
        wait_for(lambda: this_year in {d["trigger"]["date"][:4]
                                       for d in executions(ray, second, "yearly")},
                 what="the last missed tick to be recovered")
        ctx = ray.get(second.trigger.remote(NS, "yearly", "new_year"))["triggerContext"]
        assert ctx["lastBackfill"]["executions"] == 0  # its state survived
        assert datetime.fromisoformat(ctx["date"]) > datetime(2021, 6, 1, tzinfo=UTC)
        again = backfill_done(ray, second, "2018-01-01T00:00:00+01:00", "2023-01-01T00:00:00")
        assert again["executions"] == 1  # only 2018 was new
        years = sorted(d["trigger"]["date"][:4] for d in executions(ray, second, "yearly"))
        assert years == ["2018", "2019", "2020", "2021", "2022", this_year]
    finally:
        ray.kill(second)


def test_backfill_requests_are_checked(ray_session, executor) -> None:
    from kray.executor_store import Conflict, NotFound, RequestError
    ray = ray_session
    ray.get(executor.deploy.remote(YEARLY))
    ray.get(executor.deploy.remote(UPSTREAM.replace("id: upstream", "id: no_triggers", 1)
                                   + """triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: abc
"""))
    cases = [
        (executor.backfill.remote(NS, "yearly", "nope", "2020-01-01"), NotFound),
        (executor.backfill.remote(NS, "no_triggers", "hook", "2020-01-01"), RequestError),
        (executor.backfill.remote(NS, "yearly", "new_year", "2030-01-01"), RequestError),
        (executor.backfill.remote(NS, "yearly", "new_year", "last year"), RequestError),
        (executor.set_backfill_paused.remote(NS, "yearly", "new_year", True), Conflict),
    ]
    for ref, error in cases:
        with pytest.raises(error):
            ray.get(ref)
    now = datetime.now(UTC)
    view = ray.get(executor.backfill.remote(NS, "yearly", "new_year", now.replace(year=1900),
                                            now))
    assert view["triggerContext"]["backfill"]["end"] <= now.isoformat()
    paused = ray.get(executor.set_backfill_paused.remote(NS, "yearly", "new_year", True))
    assert paused["triggerContext"]["backfill"]["paused"] is True
    with pytest.raises(Conflict):
        ray.get(executor.backfill.remote(NS, "yearly", "new_year", "2020-01-01"))
    gone = ray.get(executor.delete_backfill.remote(NS, "yearly", "new_year"))
    assert gone["triggerContext"]["backfill"] is None
