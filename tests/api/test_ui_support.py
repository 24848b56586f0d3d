"""What the web UI needs from the server: cookie sessions with a CSRF header, the static app
(SPA fallback, caching, CSP), flow topologies, plugin schemas, file previews and namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fastapi.routing
import httpx
import pytest
from starlette.applications import Starlette

from kray.api.auth import LoginLimiter, SessionStore
from kray.api.webui import API_SEGMENTS, WebUI, webui_dir
from tests.api.conftest import PASSWORD, USER, LiveServer, deploy, wait_state

UI = {"X-Kray-UI": "1"}
LOG = "io.kestra.plugin.core.log.Log"


@contextlib.contextmanager
def login(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An anonymous client that logged in: it holds only the session cookie."""
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        r = client.post("/api/v1/auth/login", json={"username": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client


# -- sessions (pure) ----------------------------------------------------------------------
def test_session_store_slides_and_expires() -> None:
    now = [0.0]
    store = SessionStore(idle=10, limit=2, clock=lambda: now[0])
    sid = store.create("alice")
    assert len(sid) >= 40 and store.user(sid) == "alice"
    now[0] = 9
    assert store.user(sid) == "alice"  # used at 9: alive until 19
    now[0] = 18
    assert store.user(sid) == "alice"
    now[0] = 28.5
    assert store.user(sid) is None and len(store) == 0
    a, b, c = store.create("a"), store.create("b"), store.create("c")
    assert store.user(a) is None and store.user(b) == "b" and store.user(c) == "c"
    store.end(b)
    assert store.user(b) is None and store.user("forged") is None and store.user(None) is None


def test_login_limiter_counts_failures_per_client_and_user() -> None:
    now = [0.0]
    limiter = LoginLimiter(failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4", "Admin") == 0
        limiter.failed("1.2.3.4", "admin")
    assert limiter.retry_after("1.2.3.4", "ADMIN") == 60
    assert limiter.retry_after("5.6.7.8", "admin") == 0  # another client
    assert limiter.retry_after("1.2.3.4", "bob") == 0  # another user
    now[0] = 61
    assert limiter.retry_after("1.2.3.4", "admin") == 0
    limiter.failed("1.2.3.4", "admin")
    limiter.succeeded("1.2.3.4", "admin")
    assert limiter.retry_after("1.2.3.4", "admin") == 0


# -- sessions (server) --------------------------------------------------------------------
@pytest.mark.ray
def test_login_cookie_me_and_logout(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
        r = c.post("/api/v1/auth/login", json={"username": USER, "password": "wrong"})
        assert r.status_code == 401 and "kray_session" not in r.headers.get("set-cookie", "")
        assert r.json()["issues"][0]["path"] == "password"
        r = c.post("/api/v1/auth/login", json={"username": USER, "password": PASSWORD})
        assert r.status_code == 200 and r.json()["username"] == USER
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith("kray_session=")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert c.get("/api/v1/auth/me").json() == {"username": USER, "authEnabled": True}
        assert c.get("/api/v1/flows/search").status_code == 200
        assert c.get("/metrics").status_code == 200
        # Server-sent events work with the cookie alone (EventSource cannot set headers).
        assert c.get("/api/v1/executions/nope/follow").status_code == 404
        session = c.cookies["kray_session"]
        assert c.post("/api/v1/auth/logout").status_code == 403  # no X-Kray-UI header
        r = c.post("/api/v1/auth/logout", headers=UI)
        assert r.status_code == 204 and 'kray_session=""' in r.headers["set-cookie"]
        assert c.get("/api/v1/auth/me").status_code == 401
        # The old cookie is dead server-side too, even if a client kept it.
        r = httpx.get(f"{live_server.url}/api/v1/auth/me", cookies={"kray_session": session})
        assert r.status_code == 401
        # ...and, a browser's request, it gets no WWW-Authenticate: the UI shows its own login
        # page rather than the browser's basic-auth box. API clients still get the challenge.
        assert "www-authenticate" not in r.headers
        r = httpx.get(f"{live_server.url}/api/v1/flows/search", headers=UI)
        assert r.status_code == 401 and "www-authenticate" not in r.headers
        r = httpx.get(f"{live_server.url}/api/v1/flows/search")
        assert r.headers["www-authenticate"].startswith("Basic")


@pytest.mark.ray
def test_cookie_changes_need_the_ui_header(live_server: LiveServer, ns: str) -> None:
    source = f"id: f\nnamespace: {ns}\ntasks:\n  - id: t\n    type: {LOG}\n    message: hi\n"
    yaml = {"Content-Type": "application/x-yaml"}
    with login(live_server) as c:
        r = c.post("/api/v1/flows", content=source, headers=yaml)
        assert r.status_code == 403 and r.json()["issues"][0]["path"] == "X-Kray-UI"
        assert c.put(f"/api/v1/namespaces/{ns}/kv/k", content="1").status_code == 403
        assert c.post("/api/v1/flows", content=source,
                      headers={**yaml, "X-Kray-UI": "yes"}).status_code == 403
        assert c.get(f"/api/v1/flows/{ns}/f").status_code == 404  # nothing was created
        assert c.post("/api/v1/flows", content=source, headers={**yaml, **UI}).status_code == 200
        assert c.delete(f"/api/v1/flows/{ns}/f").status_code == 403
        assert c.delete(f"/api/v1/flows/{ns}/f", headers=UI).status_code == 204
    # Basic auth and tokens need no such header: no browser sends them on its own.
    with live_server.client() as c:
        assert c.post("/api/v1/flows", content=source, headers=yaml).status_code == 200


@pytest.mark.ray
def test_login_rejects_bad_input_and_is_rate_limited(live_server: LiveServer) -> None:
    url = f"{live_server.url}/api/v1/auth/login"
    for body, field in (({"username": USER}, "password"), ({"password": "x"}, "username"),
                        ({"username": "", "password": "x"}, "username"),
                        ({"username": 3, "password": "x"}, "username")):
        r = httpx.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["issues"][0]["path"] == field, body
    for content in (b"not json", b"[1]", b"", b"x" * 10_000):
        r = httpx.post(url, content=content)
        assert r.status_code == 422 and r.json()["issues"][0]["path"] == "body", content[:10]
    user = f"nobody-{uuid.uuid4().hex[:6]}"
    statuses = [httpx.post(url, json={"username": user, "password": f"guess{i}"}).status_code
                for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    r = httpx.post(url, json={"username": user, "password": "guess"})
    assert int(r.headers["retry-after"]) > 0
    # Another user from the same address is not locked out.
    assert httpx.post(url, json={"username": USER, "password": PASSWORD}).status_code == 200


# -- the static app -----------------------------------------------------------------------
def test_every_api_route_is_outside_the_ui(live_server: LiveServer) -> None:
    routes = live_server.app.routes  # type: ignore[attr-defined]
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in flatten(routes) if flatten is not None else routes:
        first = route.path.lstrip("/").split("/", 1)[0]
        assert first in API_SEGMENTS, route.path


@pytest.mark.ray
def test_ui_pages_need_no_auth_and_the_api_still_does(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as anonymous:
        for path in ("/", "/flows", "/executions/abc", "/login", "/flows/a.b/c"):
            r = anonymous.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html"), path
            assert r.headers["cache-control"] == "no-cache"
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self';" in csp
            assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
        assert anonymous.head("/").status_code == 200
        r = anonymous.get("/api/v1/flows/search")
        assert r.status_code == 401 and r.headers["content-type"] == "application/json"
        assert anonymous.get("/api/v1/no/such/route").status_code == 401
        assert anonymous.get("/docs").status_code == 401
        assert anonymous.post("/flows").status_code == 401  # only GET and HEAD are the UI's
    with live_server.client() as c:
        r = c.get("/api/v1/no/such/route")
        assert r.status_code == 404 and r.json()["message"]
        assert c.get("/api").status_code == 404
        assert c.get("/api/v1/flows/search").status_code == 200
    built = webui_dir() / "assets"
    assets = sorted(built.iterdir()) if built.is_dir() else []
    if assets:
        r = httpx.get(f"{live_server.url}/assets/{assets[0].name}")
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


class _WebUIClient:
    """Requests straight to the ``WebUI`` ASGI app (over a routeless app), no server."""

    def __init__(self, root: Path) -> None:
        self.app = WebUI(Starlette(), root=root)

    def get(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ui") as c:
                return await c.get(path)
        return asyncio.run(go())

    def __enter__(self) -> _WebUIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _webui(root: Path) -> _WebUIClient:
    return _WebUIClient(root)


def test_static_files_headers_and_fallback(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>kray-test</title>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("do not serve")
    with _webui(tmp_path) as c:
        r = c.get("/assets/index-abc123.js")
        assert r.status_code == 200 and r.text == "console.log(1)"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-type"].startswith("text/javascript")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in r.headers
        r = c.get("/assets/missing-000.js")
        assert r.status_code == 404 and "kray-test" not in r.text
        r = c.get("/favicon.svg")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
        for path in ("/", "/executions/x/y", "/index.html", "/%2e%2e/secret.txt",
                     "/assets/..%2f..%2fsecret.txt", "/..%2fsecret.txt"):
            r = c.get(path)
            assert "do not serve" not in r.text, path
            if not path.startswith("/assets/"):
                assert r.status_code == 200 and "kray-test" in r.text, path
                assert "content-security-policy" in r.headers
        # An API path is passed on (to an app that has no routes here).
        assert c.get("/api/v1/x").status_code == 404
        assert c.get("/health").status_code == 404


def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    with _webui(tmp_path / "missing") as c:
        r = c.get("/")
        assert r.status_code == 200 and "scripts/build_ui.py" in r.text
        assert "content-security-policy" in r.headers
        assert c.get("/assets/app.js").status_code == 404


# -- topology -----------------------------------------------------------------------------
def graph_flow(ns: str) -> str:
    return f"""id: g
namespace: {ns}
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 * * *"
    disabled: true
tasks:
  - id: first
    type: {LOG}
    message: hi
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: a
        type: {LOG}
        message: a
      - id: b
        type: {LOG}
        message: b
  - id: cond
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ true }}}}"
    then:
      - id: yes
        type: {LOG}
        message: y
    else:
      - id: no
        type: {LOG}
        message: n
  - id: sw
    type: io.kestra.plugin.core.flow.Switch
    value: x
    cases:
      x:
        - id: cx
          type: {LOG}
          message: x
    defaults:
      - id: cd
        type: {LOG}
        message: d
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: d1
          type: {LOG}
          message: d1
      - task:
          id: d2
          type: {LOG}
          message: d2
        dependsOn: [d1]
      - task:
          id: d3
          type: {LOG}
          message: d3
        dependsOn: [d1]
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks:
      - id: inner
        type: {LOG}
        message: "{{{{ taskrun.value }}}}"
errors:
  - id: onerr
    type: {LOG}
    message: e
finally:
  - id: fin
    type: {LOG}
    message: f
"""


@pytest.mark.ray
def test_flow_graph_nodes_edges_and_task_runs(http: httpx.Client, ns: str) -> None:
    deploy(http, graph_flow(ns))
    r = http.get(f"/api/v1/flows/{ns}/g/graph")
    assert r.status_code == 200, r.text
    graph = r.json()
    nodes = {n["uid"]: n for n in graph["nodes"]}
    edges = {(e["source"], e["target"]): e["relation"] for e in graph["edges"]}
    assert nodes["par"]["kind"] == "flowable" and nodes["a"]["parent"] == "par"
    assert nodes["first"] == {"uid": "first", "taskId": "first", "type": LOG, "kind": "task",
                              "parent": None, "branch": None, "label": "first",
                              "disabled": False}
    assert (nodes["yes"]["branch"], nodes["no"]["branch"]) == ("then", "else")
    assert (nodes["cx"]["branch"], nodes["cd"]["branch"]) == ("case:x", "defaults")
    assert nodes["onerr"]["branch"] == "errors" and nodes["fin"]["branch"] == "finally"
    assert nodes["$trigger.daily"]["kind"] == "trigger"
    assert nodes["par.start"]["kind"] == "start" and nodes["par.start"]["parent"] == "par"
    assert edges[("$trigger.daily", "$start")] == "trigger"
    assert edges[("$start", "first")] == "sequential"
    assert edges[("first", "par")] == "sequential"
    assert edges[("par.start", "a")] == edges[("par.start", "b")] == "parallel"
    assert edges[("d1", "d2")] == edges[("d1", "d3")] == "dag"
    assert ("dag.start", "d2") not in edges and edges[("dag.start", "d1")] == "dag"
    assert edges[("$start", "onerr")] == "error"
    assert edges[("each", "fin")] == edges[("onerr", "fin")] == "finally"
    assert edges[("fin", "$end")] == "sequential"
    for e in graph["edges"]:
        assert e["source"] in nodes and e["target"] in nodes, e
    # Every task run's taskId is a node's uid: that is how the UI colours the topology.
    run = http.post(f"/api/v1/executions/{ns}/g").json()
    done = wait_state(http, run["id"], {"SUCCESS", "FAILED", "WARNING"})
    assert done["state"] == "SUCCESS", done
    task_ids = {t["taskId"] for t in done["taskRuns"]}
    assert {"first", "a", "b", "yes", "cx", "d2", "inner", "fin"} <= task_ids
    assert task_ids <= set(nodes)
    # A revision is answered as it was.
    http.put(f"/api/v1/flows/{ns}/g", content=graph_flow(ns).replace(
        "  - id: first\n", "  - id: zeroth\n    type: " + LOG + "\n    message: z\n"
        "  - id: first\n", 1), headers={"Content-Type": "application/x-yaml"})
    assert "zeroth" in {n["uid"] for n in http.get(f"/api/v1/flows/{ns}/g/graph").json()
                        ["nodes"]}
    old = http.get(f"/api/v1/flows/{ns}/g/graph", params={"revision": 1}).json()
    assert "zeroth" not in {n["uid"] for n in old["nodes"]}


@pytest.mark.ray
def test_graph_of_unsaved_source_and_bad_input(http: httpx.Client, ns: str) -> None:
    yaml = {"Content-Type": "application/x-yaml"}
    r = http.post("/api/v1/flows/graph", content=graph_flow(ns), headers=yaml)
    assert r.status_code == 200 and any(n["uid"] == "d3" for n in r.json()["nodes"])
    assert http.get(f"/api/v1/flows/{ns}/nope/graph").status_code == 404  # nothing saved
    bad = f"id: g\nnamespace: {ns}\ntasks:\n  - id: t\n    type: {LOG}\n    mesage: hi\n"
    r = http.post("/api/v1/flows/graph", content=bad, headers=yaml)
    assert r.status_code == 422
    issue = next(i for i in r.json()["issues"] if i["path"] == "tasks[0].mesage")
    assert issue["line"] == 6 and "did you mean 'message'" in issue["message"]
    r = http.post("/api/v1/flows/graph", content="id: [unclosed\n", headers=yaml)
    assert r.status_code == 422 and r.json()["issues"][0]["line"] is not None
    r = http.post("/api/v1/flows/graph", content=b"", headers=yaml)
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "body"
    r = http.get(f"/api/v1/flows/{ns}/g/graph", params={"revision": 0})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "revision"
    assert http.get("/api/v1/flows/BAD NS/g/graph").status_code == 422


# -- schemas ------------------------------------------------------------------------------
@pytest.mark.ray
def test_plugin_schemas(http: httpx.Client) -> None:
    r = http.get("/api/v1/plugins/schemas")
    assert r.status_code == 200
    doc = r.json()
    flow = doc["flow"]
    assert {"id", "namespace", "tasks", "triggers", "inputs"} <= set(flow["properties"])
    assert "source" not in flow["properties"]
    assert LOG in doc["aliases"]
    log = doc["tasks"][doc["aliases"][LOG]]
    assert "message" in log["properties"] and LOG in log["properties"]["type"]["enum"]
    assert "io.kestra.plugin.core.trigger.Schedule" in doc["triggers"]
    schedule = doc["triggers"]["io.kestra.plugin.core.trigger.Schedule"]
    assert "cron" in schedule["properties"]
    text = r.text
    assert LOG in text and "kray.core.flow.Parallel" in text
    started = time.perf_counter()
    assert http.get("/api/v1/plugins/schemas").status_code == 200  # cached from now on
    assert time.perf_counter() - started < 5


# -- file preview -------------------------------------------------------------------------
def files_flow(ns: str) -> str:
    return f"""id: files
namespace: {ns}
tasks:
  - id: csv
    type: io.kestra.plugin.core.storage.Write
    extension: .csv
    content: |
      city,people
      Paris,2100000
      Lyon,520000
      Nice,340000
  - id: json
    type: io.kestra.plugin.core.storage.Write
    extension: .json
    content: '[{{"k": "a", "v": 1}}, {{"k": "b", "v": 2}}]'
  - id: text
    type: io.kestra.plugin.core.storage.Write
    extension: .log
    content: just some words
  - id: parquet
    type: io.kestra.plugin.jdbc.duckdb.Query
    sql: SELECT range AS n, 'row ' || range AS label FROM range(250)
    fetchType: STORE
"""


@pytest.mark.ray
def test_file_preview_csv_json_parquet_text(http: httpx.Client, ns: str) -> None:
    deploy(http, files_flow(ns))
    run = http.post(f"/api/v1/executions/{ns}/files").json()
    done = wait_state(http, run["id"], {"SUCCESS", "FAILED", "WARNING"})
    assert done["state"] == "SUCCESS", done
    outputs = {t["taskId"]: t["outputs"] for t in done["taskRuns"]}
    url = f"/api/v1/executions/{run['id']}/file/preview"

    csv = http.get(url, params={"path": outputs["csv"]["uri"], "maxRows": 2}).json()
    assert csv["format"] == "csv" and csv["columns"] == ["city", "people"]
    assert csv["rows"] == [["Paris", 2100000], ["Lyon", 520000]] and csv["truncated"]
    assert csv["size"] > 0 and csv["text"] is None
    js = http.get(url, params={"path": outputs["json"]["uri"]}).json()
    assert js["format"] == "json" and js["columns"] == ["k", "v"]
    assert js["rows"] == [["a", 1], ["b", 2]] and not js["truncated"]
    pq = http.get(url, params={"path": outputs["parquet"]["uri"]}).json()
    assert pq["format"] == "parquet" and pq["columns"] == ["n", "label"]
    assert len(pq["rows"]) == 100 and pq["rows"][3] == [3, "row 3"] and pq["truncated"]
    text = http.get(url, params={"path": outputs["text"]["uri"]}).json()
    assert text["format"] == "text" and text["text"].strip() == "just some words"

    # Same rules as a download: only this execution's files, no escaping the storage.
    other = outputs["csv"]["uri"].replace(run["id"], "someoneelse")
    for path in (other, "kray:///../../etc/passwd", "kray:////etc/passwd", "/etc/passwd"):
        r = http.get(url, params={"path": path})
        assert r.status_code == 422 and r.json()["issues"][0]["path"] == "path", path
    missing = outputs["csv"]["uri"].rsplit("/", 1)[0] + "/nothing.csv"
    assert http.get(url, params={"path": missing}).status_code == 404
    for params in ({"path": outputs["csv"]["uri"], "maxRows": 0}, {}):
        r = http.get(url, params=params)
        assert r.status_code == 422, params
    assert http.get("/api/v1/executions/nope/file/preview",
                    params={"path": outputs["csv"]["uri"]}).status_code == 404


# -- namespaces ---------------------------------------------------------------------------
@pytest.mark.ray
def test_namespaces_with_flows_kv_or_files(http: httpx.Client, ns: str) -> None:
    source = f"id: f{{}}\nnamespace: {ns}\ntasks:\n  - id: t\n    type: {LOG}\n    message: x\n"
    deploy(http, source.format(1))
    deploy(http, source.format(2))
    assert http.put(f"/api/v1/namespaces/{ns}.kv/kv/k", json=1).status_code == 200
    r = http.post(f"/api/v1/namespaces/{ns}.files/files", params={"path": "a/b.txt"},
                  content=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    found = {n["id"]: n["flows"] for n in http.get("/api/v1/namespaces").json()}
    assert found[ns] == 2 and found[f"{ns}.kv"] == 0 and found[f"{ns}.files"] == 0
    listed = http.get("/api/v1/namespaces").json()
    assert [n["id"] for n in listed] == sorted(n["id"] for n in listed)
