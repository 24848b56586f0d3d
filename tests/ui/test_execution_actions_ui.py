"""The execution page's actions end to end, in real headless Chromium against a real
``kray server local``: kill a running execution, replay an ended one from a chosen task run,
resume a paused one through the form generated from its ``onResume`` inputs, and change the
status of an ended one. Each action goes through the UI's buttons; the API only sets up and
then confirms what the server recorded.

Each test works in its own namespace so they can share one server.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.ui.conftest import login
from tests.ui.test_executions_ui import FLAKY, _call, _deploy, _start

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLEEPY = """
id: sleepy
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: going to sleep
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT120S
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: woke up
"""

APPROVAL = """
id: approval
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approver
        type: STRING
      - id: approved
        type: BOOLEAN
        defaults: false
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "approved={{{{ outputs.wait.onResume.approved }}}} by {{{{ outputs.wait.onResume.approver }}}}"
outputs:
  - id: approver
    type: STRING
    value: "{{{{ outputs.wait.onResume.approver }}}}"
"""

FAILING = """
id: failing
namespace: {ns}
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: on purpose
"""


def _state(page: Any, state: str, timeout: float = 60_000) -> None:
    page.locator(f"[data-testid=execution-page][data-state={state}]").wait_for(timeout=timeout)


def test_kill_a_running_execution_from_its_page(kray_server: Any, page: Any) -> None:
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.kill"
    _deploy(page, base, SLEEPY.format(ns=ns))
    execution_id = _start(page, base, ns, "sleepy")

    page.goto(f"{base}/executions/{execution_id}")
    page.locator('[data-testid=gantt-row][data-task-id="nap"][data-state=RUNNING]').wait_for(
        timeout=60_000)
    assert page.get_by_test_id("action-replay").count() == 0  # only for ended executions
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_test_id("action-kill").click()
    _state(page, "KILLED", timeout=30_000)  # far sooner than the Sleep's two minutes
    assert asked == ["Kill this execution?"]
    assert page.get_by_test_id("action-kill").count() == 0
    assert page.get_by_test_id("action-restart").count() == 1  # KILLED can be restarted
    nap = page.locator('[data-testid=gantt-row][data-task-id="nap"]')
    assert nap.get_attribute("data-state") == "KILLED"
    assert page.locator('[data-testid=gantt-row][data-task-id="never"]').count() == 0
    doc = _call(page, base, "GET", f"/executions/{execution_id}")
    assert doc["state"] == "KILLED"


def test_replay_an_ended_execution_from_a_chosen_task_run(kray_server: Any,
                                                          page: Any) -> None:
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.replay"
    _deploy(page, base, FLAKY.format(ns=ns))
    original_id = _start(page, base, ns, "flaky")

    page.goto(f"{base}/executions/{original_id}")
    _state(page, "FAILED")
    original = _call(page, base, "GET", f"/executions/{original_id}")
    first, check = original["taskRuns"][:2]
    assert (first["taskId"], check["taskId"]) == ("first", "check")
    _call(page, base, "PUT", f"/namespaces/{ns}/kv/flaky_ok", data=json.dumps("yes"),
          headers={"Content-Type": "application/json"})

    page.get_by_test_id("action-replay").click()
    page.get_by_test_id("replay-from").select_option(check["id"])
    page.get_by_test_id("replay-submit").click()
    page.wait_for_url(lambda url: "/executions/" in url and original_id not in url,
                      timeout=30_000)
    _state(page, "SUCCESS")
    replay_id = page.get_by_test_id("execution-id").inner_text()
    assert replay_id != original_id and replay_id in page.url
    assert page.locator('[data-testid=gantt-row][data-task-id="done"]').count() == 1

    # Replayed from `check`: `first` was carried over, not run again.
    replay = _call(page, base, "GET", f"/executions/{replay_id}")
    assert replay["state"] == "SUCCESS" and replay["parentId"] == original_id
    kept = replay["taskRuns"][0]
    assert kept["taskId"] == "first" and kept["startDate"] == first["startDate"]
    assert _call(page, base, "GET", f"/executions/{original_id}")["state"] == "FAILED"


def test_resume_a_paused_execution_with_its_form(kray_server: Any, page: Any) -> None:
    from playwright.sync_api import expect
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.resume"
    _deploy(page, base, APPROVAL.format(ns=ns))
    execution_id = _start(page, base, ns, "approval")

    page.goto(f"{base}/executions/{execution_id}")
    _state(page, "PAUSED")
    page.get_by_test_id("action-resume").click()
    form = page.get_by_test_id("resume-form")
    form.wait_for(timeout=10_000)
    approver = page.get_by_test_id("resume-field-approver")
    approved = page.get_by_test_id("resume-field-approved")
    assert approved.locator("select").input_value() == "false"  # its default

    # The server's refusal of a missing required input shows on that field; still PAUSED.
    page.get_by_test_id("resume-submit").click()
    expect(page.get_by_test_id("resume-error")).to_be_visible(timeout=10_000)
    expect(approver).to_have_attribute("data-invalid", "true")
    expect(page.get_by_test_id("resume-issue-approver")).to_be_visible()
    assert _call(page, base, "GET", f"/executions/{execution_id}")["state"] == "PAUSED"

    approver.locator("input").fill("alice")
    approved.locator("select").select_option("true")
    page.get_by_test_id("resume-submit").click()
    _state(page, "SUCCESS")
    expect(form).to_have_count(0)
    assert page.get_by_test_id("action-resume").count() == 0

    # The values reached the flow: in the logs (streamed on after the resume) and outputs.
    page.get_by_test_id("tab-logs").click()
    page.get_by_test_id("log-line").filter(has_text="approved=true by alice").wait_for(
        timeout=30_000)
    page.get_by_test_id("tab-outputs").click()
    expect(page.get_by_test_id("outputs")).to_contain_text("alice", timeout=10_000)
    doc = _call(page, base, "GET", f"/executions/{execution_id}")
    assert doc["outputs"] == {"approver": "alice"}


def test_change_the_status_of_an_ended_execution(kray_server: Any, page: Any) -> None:
    from playwright.sync_api import expect
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.status"
    _deploy(page, base, FAILING.format(ns=ns))
    execution_id = _start(page, base, ns, "failing")

    page.goto(f"{base}/executions/{execution_id}")
    _state(page, "FAILED")
    page.get_by_test_id("action-status").click()
    choices = page.get_by_test_id("status-select").locator("option").all_inner_texts()
    assert "FAILED" not in choices and "WARNING" in choices  # not its own state
    page.get_by_test_id("status-select").select_option("WARNING")
    page.get_by_test_id("status-submit").click()
    _state(page, "WARNING", timeout=20_000)
    expect(page.get_by_test_id("status-panel")).to_have_count(0)
    assert page.get_by_test_id("action-restart").count() == 1  # WARNING can be restarted
    assert _call(page, base, "GET", f"/executions/{execution_id}")["state"] == "WARNING"

    # The page stays the same execution, and a reload shows the stored state.
    page.reload()
    _state(page, "WARNING", timeout=20_000)


def test_restart_streams_only_the_new_log_lines(kray_server: Any, page: Any) -> None:
    """A restart makes the execution live again: the page reopens its log stream after the
    lines it already shows (``lastEventId``), so none is shown twice."""
    from playwright.sync_api import expect
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.relogs"
    _deploy(page, base, FLAKY.format(ns=ns))
    execution_id = _start(page, base, ns, "flaky")
    follows: list[str] = []
    page.on("request", lambda request: follows.append(request.url)
            if f"/logs/{execution_id}/follow" in request.url else None)

    page.goto(f"{base}/executions/{execution_id}?tab=logs")
    _state(page, "FAILED")
    before = _call(page, base, "GET", f"/logs/{execution_id}")
    expect(page.get_by_test_id("log-count")).to_have_text(re.compile(rf"^{len(before)} lines"),
                                                          timeout=10_000)
    _call(page, base, "PUT", f"/namespaces/{ns}/kv/flaky_ok", data=json.dumps("yes"),
          headers={"Content-Type": "application/json"})
    page.get_by_test_id("action-restart").click()
    _state(page, "SUCCESS")
    page.get_by_test_id("log-line").filter(has_text="flag set, done").wait_for(timeout=30_000)

    after = _call(page, base, "GET", f"/logs/{execution_id}")
    assert len(after) > len(before)
    expect(page.get_by_test_id("log-count")).to_have_text(re.compile(rf"^{len(after)} lines"))
    assert page.get_by_test_id("log-line").filter(has_text="checking the flag").count() == 1
    assert any(url.endswith(f"/follow?lastEventId={len(before)}") for url in follows), follows
