"""Trigger models validated with the flow (located issues), the trigger state table, and what
a triggered execution is created with (keys, variables, inputs)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from kray.storage.repository import Repository
from kray.storage.triggers import TriggerState, delete_states, load_states, save_states

from kray.errors import FlowValidationError
from kray.flow.parse import parse_flow
from kray.registry import PluginRegistry
from kray.templating import TemplateEngine
from kray.triggers.firing import (
    ended_key,
    parse_body,
    render_inputs,
    tick_key,
    webhook_variables,
)
from kray.triggers.models import (
    DEFAULT_FLOW_STATES,
    FlowTrigger,
    ScheduleTrigger,
    WebhookTrigger,
    parse_trigger,
)
from kray.triggers.schedule import Recover

HEAD = """id: triggered
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
"""


def flow_issues(triggers: str) -> list[tuple[int | None, int | None, str]]:
    try:
        parse_flow(HEAD + triggers, registry=PluginRegistry.default())
    except FlowValidationError as e:
        return [(i.line, i.column, i.message) for i in e.issues]
    return []


def test_valid_triggers_parse_into_their_models() -> None:
    flow = parse_flow(HEAD + """\
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
    timezone: Europe/Paris
    recoverMissedSchedules: LAST
    lateMaximumDelay: PT1H
    stopAfter: [FAILED]
    inputs: {day: "{{ trigger.date }}"}
    labels: [{key: source, value: schedule}]
    conditions:
      - type: io.kestra.plugin.core.condition.Not
        conditions:
          - type: io.kestra.plugin.core.condition.Weekend
  - id: after_etl
    type: kray.core.trigger.Flow
    preconditions:
      flows:
        - {namespace: company.team, flowId: etl, states: [SUCCESS]}
      timeWindow: {type: SLIDING_WINDOW, window: PT2H}
  - id: hook
    type: io.kestra.core.models.triggers.types.Webhook
    key: s3cr3t
""", registry=PluginRegistry.default())
    schedule, flow_trigger, webhook = (parse_trigger(t) for t in flow.triggers)
    assert isinstance(schedule, ScheduleTrigger)
    assert schedule.recover_missed_schedules is Recover.LAST
    assert schedule.late_maximum_delay is not None and schedule.labels == {"source": "schedule"}
    assert schedule.schedule.next_after(datetime(2024, 1, 1, tzinfo=UTC)) \
        == datetime(2024, 1, 1, 1, tzinfo=UTC)
    assert isinstance(flow_trigger, FlowTrigger)
    assert tuple(flow_trigger.states) == DEFAULT_FLOW_STATES
    assert isinstance(webhook, WebhookTrigger) and webhook.key == "s3cr3t"


def test_typos_and_bad_values_are_located() -> None:
    found = flow_issues("""\
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 * *"
    timezon: Europe/Paris
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
    recoverMissedSchedules: SOME
    conditions:
      - type: io.kestra.plugin.core.condition.DayWeek
        dayOfWek: MONDAY
""")
    assert (11, 5, "extra field not permitted: 'timezon'; did you mean 'timezone'?") in found
    assert (10, 5, ("invalid value '0 9 * *' for 'cron': cron '0 9 * *' has 4 fields, "
                    "expected 5")) in found
    assert (12, 5, "field required: 'key'") in found
    assert any(line == 17 and "'SOME'" in msg and "'ALL', 'LAST' or 'NONE'" in msg
               for line, _, msg in found)
    assert (20, 9, "extra field not permitted: 'dayOfWek'") in found


def test_execution_conditions_belong_to_flow_triggers() -> None:
    found = flow_issues("""\
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
""")
    assert len(found) == 1 and "only Flow triggers have one, not Schedule" in found[0][2]


def test_plugin_trigger_types_keep_their_own_validation() -> None:
    from kray.plugins import core
    registry = PluginRegistry()
    core.register(registry)
    registry.register_trigger_type("acme.trigger.Poll")
    flow = parse_flow(HEAD + "  - {id: poll, type: acme.trigger.Poll, anything: 1}\n",
                      registry=registry)
    assert parse_trigger(flow.triggers[0]) is None  # not the scheduler's to run


# -- trigger state ---------------------------------------------------------------------------

def test_trigger_state_round_trip(tmp_path: Path) -> None:
    with Repository(tmp_path / "kray.duckdb") as repo:
        tick = datetime(2024, 5, 1, 10, tzinfo=UTC)
        state = TriggerState("ns", "flow", "daily", "Schedule", watermark=tick,
                             data={"backfill": {"start": tick.isoformat()}})
        save_states(repo, [state, TriggerState("ns", "flow", "hook", "Webhook")])
        state.disabled, state.last_execution_id = True, "ex1"
        save_states(repo, [state, state])
        loaded = {s.trigger_id: s for s in load_states(repo)}
        assert loaded["daily"].disabled and loaded["daily"].watermark == tick
        assert loaded["daily"].last_execution_id == "ex1"
        assert loaded["daily"].data == {"backfill": {"start": tick.isoformat()}}
        assert loaded["daily"].to_dict()["date"] == tick.isoformat()
        delete_states(repo, [("ns", "flow", "hook")])
        assert [s.trigger_id for s in load_states(repo)] == ["daily"]


# -- firing ----------------------------------------------------------------------------------

def test_keys() -> None:
    tick = datetime(2024, 5, 1, 12, tzinfo=UTC).astimezone()
    assert tick_key("ns", "f", "t", tick) == "ns/f/t/2024-05-01T12:00:00+00:00"
    assert ended_key("ns", "f", "t", {"id": "up", "restarts": 1}) == "ns/f/t/execution/up/1"


def test_webhook_variables_are_data() -> None:
    variables = webhook_variables(
        b'{"name": "{{ secret(\'X\') }}", "n": 1}',
        [("Content-Type", "application/json"), ("X-Tag", "a"), ("x-tag", "b")],
        [("page", "1"), ("page", "2")])
    assert variables == {"body": {"name": "{{ secret('X') }}", "n": 1},
                         "headers": {"content-type": ["application/json"], "x-tag": ["a", "b"]},
                         "parameters": {"page": ["1", "2"]}}
    assert parse_body(b"plain text") == "plain text" and parse_body(b"") is None
    assert parse_body(b"\xff\xfe") == "\ufffd\ufffd"
    # Rendering the flow's inputs with that body never compiles the body itself.
    rendered = render_inputs(TemplateEngine().evaluate,
                             {"name": "{{ trigger.body.name }}", "n": "{{ trigger.body.n }}",
                              "fixed": 3, "nested": ["x{{ trigger.body.n }}"]},
                             {"trigger": variables})
    assert rendered == {"name": "{{ secret('X') }}", "n": 1, "fixed": 3, "nested": ["x1"]}


@pytest.mark.parametrize("text", ["io.kestra.plugin.core.trigger.Flow", "kray.core.trigger.Flow"])
def test_flow_trigger_names(text: str) -> None:
    flow = parse_flow(HEAD + f"  - {{id: up, type: {text}, states: [FAILED]}}\n",
                      registry=PluginRegistry.default())
    trigger = parse_trigger(flow.triggers[0])
    assert isinstance(trigger, FlowTrigger) and [s.value for s in trigger.states] == ["FAILED"]
