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


def id_events(response: httpx.Response) -> list[tuple[str, str | None, dict]]:
    """(event, id, data) of each event, the id None where the event has none."""
    out, event, event_id = [], None, None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event, event_id = line[7:], None
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            out.append((event, event_id, json.loads(line[6:])))
    return out


def follow_logs(live_server: LiveServer, execution_id: str, last_id: str | None = None,
                query: str | None = None) -> list[tuple[str, str | None, dict]]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    params = {"lastEventId": query} if query is not None else {}
    with live_server.client() as client, client.stream(
            "GET", f"/api/v1/logs/{execution_id}/follow", headers=headers,
            params=params) as r:
        assert r.status_code == 200
        return id_events(r)


def many_lines(ns: str) -> str:
    return f"""id: many
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3, 4, 5]
    concurrencyLimit: 1
    tasks:
      - id: line
        type: io.kestra.plugin.core.log.Log
        message: "line {{{{ taskrun.value }}}}"
"""


def test_follow_logs_resumes_after_last_event_id(live_server: LiveServer, http: httpx.Client,
                                                 ns: str) -> None:
    deploy(http, many_lines(ns))
    ex = http.post(f"/api/v1/executions/{ns}/many", params={"wait": True}).json()
    assert ex["state"] == "SUCCESS"
    full = follow_logs(live_server, ex["id"])
    assert [(i, d["message"]) for k, i, d in full if k == "log"] == [
        (str(n), f"line {n}") for n in range(1, 6)]
    assert full[-1] == ("end", None, {"state": "SUCCESS"})

    def messages(got: list[tuple[str, str | None, dict]]) -> list[tuple[str | None, str]]:
        return [(i, d["message"]) for k, i, d in got if k == "log"]

    # A reconnect gets the lines after the last one it had, numbered as before.
    assert messages(follow_logs(live_server, ex["id"], "3")) == [("4", "line 4"),
                                                                ("5", "line 5")]
    after_all = follow_logs(live_server, ex["id"], "5")
    assert messages(after_all) == [] and after_all[-1][0] == "end"
    # The query parameter does the same for a client that cannot set headers; the header wins.
    assert messages(follow_logs(live_server, ex["id"], query="4")) == [("5", "line 5")]
    assert messages(follow_logs(live_server, ex["id"], "2", query="4"))[0] == ("3", "line 3")
    # An id that is no line number of this execution starts again from the first line.
    for bad in ("abc", "-1", "6", "2.5", "99999999999999999999999", ""):
        assert messages(follow_logs(live_server, ex["id"], bad)) == messages(full), bad
    for bad in ("x", "１"):  # a full-width digit is no line number
        assert messages(follow_logs(live_server, ex["id"], query=bad)) == messages(full)


def test_follow_logs_reconnect_while_running(live_server: LiveServer, http: httpx.Client,
                                             ns: str) -> None:
    deploy(http, chatty(ns))
    ex = http.post(f"/api/v1/executions/{ns}/chatty").json()
    # Take the first line, then hang up while the Sleep runs, as a dropped connection would.
    with live_server.client() as client, client.stream(
            "GET", f"/api/v1/logs/{ex['id']}/follow") as r:
        first = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                first = line[4:]
            if line.startswith("data: "):
                assert json.loads(line[6:])["message"] == f"hello {ex['id']}"
                break
    assert first == "1"
    assert http.get(f"/api/v1/executions/{ex['id']}").json()["state"] == "RUNNING"
    rest = follow_logs(live_server, ex["id"], first)
    assert [(k, i, d.get("message")) for k, i, d in rest if k == "log"] == [
        ("log", "2", "careful now")]
    assert rest[-1] == ("end", None, {"state": "SUCCESS"})
