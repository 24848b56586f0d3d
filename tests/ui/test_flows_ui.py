"""The flows UI in real headless Chromium against a real ``kray server local``: write a flow in
the editor, see a validation error marked on the right line, fix it and save it, see its
topology; and browse the KV store (a key set through the API shows up and is edited in the UI).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NS = "uitest.flows"

# Line 9 has a typo'd property: the server reports it there (and the missing one on line 7).
BROKEN = f"""id: editor_flow
namespace: {NS}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
  - id: branch
    type: io.kestra.plugin.core.flow.If
    conditon: "{{{{ true }}}}"
    then:
      - id: inner
        type: io.kestra.plugin.core.log.Log
        message: inside
"""

FIXED = BROKEN.replace("conditon:", "condition:")


def _base(server: Any) -> str:
    return str(getattr(server, "url", server)).rstrip("/")


def _call(page: Any, base: str, method: str, path: str, **kwargs: Any) -> Any:
    """An API call with the page's session cookie (and the UI's CSRF header)."""
    headers = {"X-Kray-UI": "1", **kwargs.pop("headers", {})}
    response = page.request.fetch(f"{base}/api/v1{path}", method=method, headers=headers,
                                  **kwargs)
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json() if "json" in response.headers.get("content-type", "") else None


def _replace_editor_text(page: Any, text: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    # insert_text bypasses auto-indent and bracket closing: the YAML lands as written.
    page.keyboard.insert_text(text)


def _error_lines(page: Any) -> list[int]:
    """1-based numbers of the editor lines holding an error underline."""
    return page.evaluate("""() => {
        const lines = [...document.querySelectorAll('.cm-content .cm-line')];
        return lines.flatMap((line, i) =>
            line.querySelector('.cm-lintRange-error') ? [i + 1] : []);
    }""")


def test_nothing_but_login_without_a_session(kray_server: Any, page: Any) -> None:
    base = _base(kray_server)
    page.goto(f"{base}/flows")
    page.wait_for_selector("[data-testid=login-form]")
    assert page.locator("[data-testid=nav]").count() == 0
    assert "next=%2Fflows" in page.url
    page.fill("[data-testid=login-username]", "nobody")
    page.fill("[data-testid=login-password]", "wrong")
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=login-error]")
    assert page.locator("[data-testid=nav]").count() == 0


def test_write_validate_save_and_see_topology(kray_server: Any, page: Any) -> None:
    base = _base(kray_server)
    login(page, kray_server)
    page.goto(f"{base}/flows")
    page.get_by_test_id("create-flow").click()
    page.wait_for_selector(".cm-content")
    _replace_editor_text(page, BROKEN)

    issue = page.locator("[data-testid=validation-issue]", has_text="conditon")
    issue.wait_for(timeout=10_000)
    assert issue.get_attribute("data-line") == "9"
    page.locator(".cm-lintRange-error").first.wait_for()
    assert 9 in _error_lines(page)
    assert page.get_by_test_id("validation-summary").inner_text() != "valid"

    # Fix the typo in place: the marker goes away and the flow saves.
    _replace_editor_text(page, FIXED)
    page.get_by_test_id("validation-summary").filter(
        has_text=re.compile(r"^valid$")).wait_for(timeout=10_000)
    assert _error_lines(page) == []
    page.keyboard.press("Control+s")
    page.wait_for_url(f"{base}/flows/{NS}/editor_flow", timeout=10_000)
    saved = _call(page, base, "GET", f"/flows/{NS}/editor_flow")
    assert saved["revision"] == 1 and "condition:" in saved["source"]

    # An edit saves as a new revision.
    page.wait_for_selector(".cm-content")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("description: edited in the UI\n")
    page.get_by_test_id("save-flow").click()
    page.get_by_test_id("save-notice").wait_for()
    assert _call(page, base, "GET", f"/flows/{NS}/editor_flow")["revision"] == 2

    page.get_by_test_id("tab-topology").click()
    page.wait_for_selector("[data-testid='topology-node-inner']")
    for uid in ("hello", "inner"):
        assert page.locator(f"[data-testid='topology-node-{uid}']").count() == 1
    assert page.locator("[data-testid='topology-group-branch']").count() == 1

    page.get_by_test_id("tab-revisions").click()
    page.wait_for_selector("[data-testid=revision-diff] .cm-mergeView")
    assert page.locator("[data-testid=revision-2]").count() == 1


def test_browse_and_edit_kv(kray_server: Any, page: Any) -> None:
    base = _base(kray_server)
    login(page, kray_server)
    ns = "uitest.kv"
    _call(page, base, "PUT", f"/namespaces/{ns}/kv/greeting", data='"hello from the API"',
          headers={"Content-Type": "application/json"})
    page.goto(f"{base}/kv?namespace={ns}")
    value = page.get_by_test_id("kv-value-greeting")
    value.wait_for()
    assert value.inner_text() == "hello from the API"

    page.get_by_test_id("kv-edit-greeting").click()
    page.get_by_test_id("kv-value-input").fill("edited in the UI")
    page.get_by_test_id("kv-save").click()
    page.get_by_test_id("kv-value-greeting").filter(
        has_text=re.compile(r"^edited in the UI$")).wait_for()
    entry = _call(page, base, "GET", f"/namespaces/{ns}/kv/greeting")
    assert entry["value"] == "edited in the UI" and entry["type"] == "STRING"
