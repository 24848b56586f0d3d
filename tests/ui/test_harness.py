"""The browser harness itself: a real server, real Chromium, the login cookie; and the
server's Ray living beside the test session's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import KrayServer, _descendants, login, start_server, stop_server


@pytest.mark.browser
@pytest.mark.slow
def test_page_loads_and_login_through_the_api(kray_server: KrayServer, page: Any) -> None:
    response = page.goto(kray_server.url + "/")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert page.title() is not None
    me = page.request.get(f"{kray_server.url}/api/v1/auth/me")
    assert me.status == 401
    login(page, kray_server)
    me = page.request.get(f"{kray_server.url}/api/v1/auth/me")
    assert me.status == 200 and me.json()["username"] == kray_server.username
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["kray_session"]["httpOnly"] and cookies["kray_session"]["sameSite"] == "Strict"
    # The cookie alone does not allow a change: the UI's header is required.
    r = page.request.put(f"{kray_server.url}/api/v1/namespaces/harness/kv/k", data="1")
    assert r.status == 403
    r = page.request.put(f"{kray_server.url}/api/v1/namespaces/harness/kv/k", data="1",
                         headers={"X-Kray-UI": "1"})
    assert r.status == 200, r.text()


@pytest.mark.ray
@pytest.mark.slow
def test_server_ray_runs_beside_the_session_ray(executor: Any, kray_server: KrayServer) -> None:
    """Two Rays on one machine: the session's (in this process) and the server's own."""
    import ray

    assert ray.get(executor.ping.remote())["config"]["data_dir"] != str(kray_server.data_dir)
    source = ("id: beside\nnamespace: harness\ntasks:\n  - id: t\n"
              "    type: io.kestra.plugin.core.log.Log\n    message: hello\n")
    with kray_server.client() as c:
        assert c.post("/api/v1/flows", content=source,
                      headers={"Content-Type": "application/x-yaml"}).status_code == 200
        r = c.post("/api/v1/executions/harness/beside", params={"wait": "true"})
        assert r.status_code == 200 and r.json()["state"] == "SUCCESS", r.text
    assert ray.get(executor.ping.remote())  # the session's Ray is still fine


@pytest.mark.slow
def test_a_stopped_server_takes_its_ray_with_it(tmp_path: Path) -> None:
    proc, server = start_server(tmp_path)
    tree = _descendants(proc.pid)
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "gcs_server" in names and "raylet" in names  # its own Ray, as its children
    assert stop_server(proc) == []  # a clean stop: nothing had to be ended by force
    assert proc.returncode == 0, server.log_text()
    assert not [p.pid for p in tree if p.is_running() and p.status() != "zombie"]
    assert "kray: stopped" in server.log_text()
