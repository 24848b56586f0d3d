"""The executions UI in real headless Chromium against a real ``kray server local``: run a flow
from the execute dialog and watch its Gantt and logs update live (no reload), restart a failed
execution from its page, and a ForEach of 2,000 task runs whose Gantt stays virtualized and
responsive.

Each test works in its own namespace so they can share one server.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.ui.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE = """
id: live
namespace: {ns}
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{{{ inputs.name }}}}"
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT6S
  - id: bye
    type: io.kestra.plugin.core.log.Log
    message: "bye {{{{ inputs.name }}}}"
"""

# Fails until the KV flag is set: the first run fails, a restart after setting it succeeds.
FLAKY = """
id: flaky
namespace: {ns}
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: checking the flag
  - id: check
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ kv('flaky_ok', null, false) != 'yes' }}}}"
    errorMessage: the flag flaky_ok is not set
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: flag set, done
"""

BIG = """
id: big
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(1, 2000) | list }}}}"  # inclusive: 2,000 values
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "processing item {{{{ taskrun.value }}}}"
"""


def _call(page: Any, base: str, method: str, path: str, **kwargs: Any) -> Any:
    """An API call with the page's session cookie (and the UI's CSRF header)."""
    headers = {"X-Kray-UI": "1", **kwargs.pop("headers", {})}
    response = page.request.fetch(f"{base}/api/v1{path}", method=method, headers=headers,
                                  **kwargs)
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json() if "json" in response.headers.get("content-type", "") else None


def _deploy(page: Any, base: str, source: str) -> None:
    _call(page, base, "POST", "/flows", data=source,
          headers={"Content-Type": "application/x-yaml"})


def _start(page: Any, base: str, ns: str, flow_id: str) -> str:
    return _call(page, base, "POST", f"/executions/{ns}/{flow_id}")["id"]


def test_run_with_inputs_then_gantt_and_logs_update_live(kray_server: Any, page: Any) -> None:
    from playwright.sync_api import expect
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.live"
    _deploy(page, base, LIVE.format(ns=ns))

    page.goto(f"{base}/flows/{ns}/live")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("input-name").fill("kray")
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url("**/executions/*")
    page.evaluate("window.__noReload = true")
    execution = page.get_by_test_id("execution-page")

    # The Gantt grows while the execution runs: the Sleep's row shows up RUNNING.
    sleeping = page.locator('[data-testid=gantt-row][data-task-id="wait"][data-state=RUNNING]')
    sleeping.wait_for(timeout=60_000)
    assert execution.get_attribute("data-state") == "RUNNING"
    assert page.locator('[data-testid=gantt-row][data-task-id="hello"]').count() == 1
    assert page.locator('[data-testid=gantt-row][data-task-id="bye"]').count() == 0

    # The first log line is there while the Sleep still runs; the last one streams in.
    page.get_by_test_id("tab-logs").click()
    page.get_by_test_id("log-line").filter(has_text="hello kray").wait_for(timeout=30_000)
    assert execution.get_attribute("data-state") == "RUNNING"
    assert page.get_by_test_id("log-line").filter(has_text="bye kray").count() == 0
    page.get_by_test_id("log-line").filter(has_text="bye kray").wait_for(timeout=60_000)
    page.locator('[data-testid=execution-page][data-state=SUCCESS]').wait_for(timeout=30_000)

    # Back on the Gantt: every task run, each bar SUCCESS, and still the same page load.
    page.get_by_test_id("tab-gantt").click()
    rows = page.get_by_test_id("gantt-row")
    assert rows.count() == 3
    assert {rows.nth(i).get_attribute("data-state") for i in range(3)} == {"SUCCESS"}
    assert page.evaluate("window.__noReload === true")

    # Level filter and search narrow the lines.
    page.get_by_test_id("tab-logs").click()
    page.get_by_test_id("log-search").fill("bye")
    expect(page.get_by_test_id("log-line")).to_have_count(1, timeout=5_000)
    page.get_by_test_id("log-search").fill("")
    page.get_by_test_id("log-level").select_option("ERROR")
    expect(page.get_by_test_id("log-line")).to_have_count(0, timeout=5_000)


def test_restart_a_failed_execution_from_its_page(kray_server: Any, page: Any) -> None:
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.restart"
    _deploy(page, base, FLAKY.format(ns=ns))
    execution_id = _start(page, base, ns, "flaky")

    page.goto(f"{base}/executions/{execution_id}")
    page.locator('[data-testid=execution-page][data-state=FAILED]').wait_for(timeout=60_000)
    check = page.locator('[data-testid=gantt-row][data-task-id="check"]')
    assert check.get_attribute("data-state") == "FAILED"
    assert page.get_by_test_id("action-kill").count() == 0

    _call(page, base, "PUT", f"/namespaces/{ns}/kv/flaky_ok", data=json.dumps("yes"),
          headers={"Content-Type": "application/json"})
    page.get_by_test_id("action-restart").click()
    page.locator('[data-testid=execution-page][data-state=SUCCESS]').wait_for(timeout=60_000)

    # Same execution, the failed task run got a second attempt that succeeded.
    assert execution_id in page.url
    assert check.get_attribute("data-state") == "SUCCESS"
    bars = check.get_by_test_id("gantt-bar")
    assert [bars.nth(i).get_attribute("data-state") for i in range(bars.count())] == [
        "FAILED", "SUCCESS"]
    assert page.locator('[data-testid=gantt-row][data-task-id="done"]').count() == 1
    assert page.get_by_test_id("action-restart").count() == 0


# Long tasks (main thread busy > 50 ms) recorded from the first byte of the page on.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


def test_gantt_of_2000_task_runs_is_virtualized_and_responsive(kray_server: Any,
                                                                page: Any) -> None:
    from playwright.sync_api import expect
    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.big"
    _deploy(page, base, BIG.format(ns=ns))
    page.add_init_script(LONG_TASKS)
    execution_id = _start(page, base, ns, "big")

    page.goto(f"{base}/executions/{execution_id}")  # while it runs: the updates stream in
    page.locator('[data-testid=execution-page][data-state=SUCCESS]').wait_for(timeout=180_000)
    gantt = page.get_by_test_id("gantt")
    expect(gantt).to_have_attribute("data-rows", "2001", timeout=10_000)
    assert page.get_by_test_id("taskrun-count").inner_text() == "2001"

    # Virtualized: the DOM holds a window of rows, not 2,001.
    in_dom = page.get_by_test_id("gantt-row").count()
    assert 10 <= in_dom < 120, in_dom

    # Scrolling reaches the last task run, and the page answers at once while it does.
    started = time.monotonic()
    page.evaluate("""() => {
      const el = document.querySelector('[data-testid=gantt-scroll]');
      el.scrollTop = el.scrollHeight;
    }""")
    gantt.locator(".gantt-value").get_by_text("2000", exact=True).wait_for(timeout=5_000)
    answered = time.monotonic() - started
    assert gantt.get_by_test_id("gantt-row").count() < 120
    assert answered < 5.0, answered

    # The logs tab: 2,000 lines (one per item), a window of them in the DOM.
    started = time.monotonic()
    page.get_by_test_id("tab-logs").click()
    page.get_by_test_id("log-count").filter(has_text="2000 lines").wait_for(timeout=30_000)
    logs_shown = time.monotonic() - started
    assert page.get_by_test_id("log-line").count() < 150
    page.get_by_test_id("log-search").fill("item 1999")
    expect(page.get_by_test_id("log-line")).to_have_count(1, timeout=5_000)

    long_tasks = page.evaluate("window.__longTasks")
    print(f"\n2,000 task runs: {in_dom} Gantt rows in the DOM, scroll to the end answered in "
          f"{answered * 1000:.0f} ms, logs tab with 2,000 lines in {logs_shown * 1000:.0f} ms; "
          f"long tasks: {len(long_tasks)}, longest {max(long_tasks, default=0):.0f} ms, "
          f"total {sum(long_tasks):.0f} ms")


def test_executions_list_filters_and_opens_an_execution(kray_server: Any, page: Any) -> None:
    from playwright.sync_api import expect

    base = kray_server.url
    login(page, kray_server)
    ns = "uitest.list"
    for flow_id, task in (("ok", "type: io.kestra.plugin.core.log.Log\n    message: fine"),
                          ("ko", "type: io.kestra.plugin.core.execution.Fail")):
        _deploy(page, base, f"id: {flow_id}\nnamespace: {ns}\ntasks:\n  - id: only\n    {task}\n")
    _call(page, base, "POST", f"/executions/{ns}/ok?wait=true&labels=team:data")
    failed = _call(page, base, "POST", f"/executions/{ns}/ko?wait=true")["id"]

    page.goto(f"{base}/executions?namespace={ns}")
    rows = page.get_by_test_id("execution-row")
    expect(rows).to_have_count(2, timeout=20_000)

    page.get_by_test_id("filter-state").click()
    page.get_by_test_id("state-option-FAILED").check()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", failed)
    assert "state=FAILED" in page.url  # the filters live in the URL

    page.get_by_test_id("filter-clear").click()
    page.get_by_test_id("filter-labels").fill("team:data")
    page.get_by_test_id("filter-namespace").fill(ns)
    expect(page.locator("[data-testid=execution-row][data-state=SUCCESS]")).to_have_count(1)
    expect(rows).to_have_count(1)

    page.get_by_test_id("filter-labels").fill("")
    page.locator(f"[data-testid=execution-row][data-id='{failed}']").click()
    page.wait_for_url(f"**/executions/{failed}")
    expect(page.get_by_test_id("execution-page")).to_have_attribute("data-state", "FAILED")
