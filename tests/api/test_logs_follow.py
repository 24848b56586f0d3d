"""Logs over HTTP, and following an execution and its logs by Server-Sent Events."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.api.conftest import LiveServer, deploy, wait_state

pytestmark = pytest.mark.ray


def chatty(ns: str) -> str:
    return f"""id: chatty
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{{{ execution.id }}}}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.6S
  - id: warn
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: careful now
"""


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    out, event = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
    return out


def test_execution_logs_search_and_download(http: httpx.Client, ns: str) -> None:
    deploy(http, chatty(ns))
    ex = http.post(f"/api/v1/executions/{ns}/chatty", params={"wait": True}).json()
    lines = http.get(f"/api/v1/logs/{ex['id']}").json()
    assert [ln["message"] for ln in lines] == [f"hello {ex['id']}", "careful now"]
    assert lines[0]["taskId"] == "hello" and lines[0]["level"] == "INFO"
    warn = http.get(f"/api/v1/logs/{ex['id']}", params={"minLevel": "WARNING"}).json()
    assert [ln["taskId"] for ln in warn] == ["warn"]
    only = http.get(f"/api/v1/logs/{ex['id']}", params={"taskId": "hello"}).json()
    assert len(only) == 1
    assert http.get("/api/v1/logs/nope").status_code == 404
    assert http.get(f"/api/v1/logs/{ex['id']}", params={"minLevel": "LOUD"}).status_code == 422

    found = http.get("/api/v1/logs/search", params={"namespace": ns, "q": "CAREFUL"}).json()
    assert found["total"] == 1 and found["results"][0]["flowId"] == "chatty"
    assert found["results"][0]["executionId"] == ex["id"]
    everything = http.get("/api/v1/logs/search", params={"namespace": ns, "sort": "asc"}).json()
    assert [r["message"] for r in everything["results"]][0].startswith("hello")
    errors = http.get("/api/v1/logs/search", params={"namespace": ns, "minLevel": "ERROR"})
    assert errors.json()["total"] == 0

    text = http.get(f"/api/v1/logs/{ex['id']}/download").text
    assert "careful now" in text and "WARN" in text


def test_follow_execution_and_logs(live_server: LiveServer, http: httpx.Client,
                                   ns: str) -> None:
    deploy(http, chatty(ns))
    ex = http.post(f"/api/v1/executions/{ns}/chatty").json()
    started = time.time()
    with live_server.client() as client, client.stream(
            "GET", f"/api/v1/executions/{ex['id']}/follow") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = events(r)
    assert time.time() - started < 30
    kinds = [k for k, _ in got]
    assert kinds[-1] == "end" and got[-1][1] == {"state": "SUCCESS"}
    snapshots = [d for k, d in got if k == "execution"]
    assert snapshots[-1]["state"] == "SUCCESS" and len(snapshots) >= 2  # updates as it ran
    assert "meta" not in snapshots[-1]["taskRuns"][0]

    with live_server.client() as client, client.stream(
            "GET", f"/api/v1/logs/{ex['id']}/follow") as r:
        got = events(r)  # the execution has ended: every line, then the end
    assert [d["message"] for k, d in got if k == "log"] == [f"hello {ex['id']}", "careful now"]
    assert got[-1] == ("end", {"state": "SUCCESS"})

    live = http.post(f"/api/v1/executions/{ns}/chatty").json()
    with live_server.client() as client, client.stream(
            "GET", f"/api/v1/logs/{live['id']}/follow") as r:
        got = events(r)
    assert [d["message"] for k, d in got if k == "log"] == [f"hello {live['id']}",
                                                           "careful now"]
    assert wait_state(http, live["id"], {"SUCCESS"})
    assert http.get("/api/v1/executions/nope/follow").status_code == 404
    assert http.get("/api/v1/logs/nope/follow").status_code == 404
