"""Flows over HTTP: YAML bodies, revisions, search, validate, namespace sync, errors with
their line and column."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import deploy

pytestmark = pytest.mark.ray

YAML = {"Content-Type": "application/x-yaml"}


def flow(ns: str, flow_id: str = "hello", message: str = "hi") -> str:
    return f"""id: {flow_id}
namespace: {ns}
description: a test flow
labels:
  team: data
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: {message}
"""


def test_create_get_update_revisions_delete(http: httpx.Client, ns: str) -> None:
    created = deploy(http, flow(ns))
    assert (created["namespace"], created["id"], created["revision"]) == (ns, "hello", 1)
    assert created["tasks"][0]["type"] == "io.kestra.plugin.core.log.Log"
    assert created["labels"] == {"team": "data"} and created["source"] == flow(ns)

    again = http.post("/api/v1/flows", content=flow(ns), headers=YAML)
    assert again.status_code == 409 and "PUT" in again.json()["message"]

    same = http.put(f"/api/v1/flows/{ns}/hello", content=flow(ns), headers=YAML)
    assert same.status_code == 200 and same.json()["revision"] == 1  # unchanged: no revision
    changed = http.put(f"/api/v1/flows/{ns}/hello", content=flow(ns, message="bye"),
                       headers=YAML)
    assert changed.json()["revision"] == 2

    latest = http.get(f"/api/v1/flows/{ns}/hello").json()
    assert latest["revision"] == 2 and "bye" in latest["source"]
    first = http.get(f"/api/v1/flows/{ns}/hello", params={"revision": 1}).json()
    assert "hi" in first["source"] and first["revision"] == 1
    revisions = http.get(f"/api/v1/flows/{ns}/hello/revisions").json()
    assert [r["revision"] for r in revisions] == [1, 2]

    assert http.delete(f"/api/v1/flows/{ns}/hello").status_code == 204
    assert http.get(f"/api/v1/flows/{ns}/hello").status_code == 404
    assert http.delete(f"/api/v1/flows/{ns}/hello").status_code == 404
    assert http.post(f"/api/v1/executions/{ns}/hello").status_code == 404
    history = http.get(f"/api/v1/flows/{ns}/hello/revisions").json()
    assert [r["deleted"] for r in history] == [False, False, True]  # history is kept


def test_invalid_flow_is_422_with_line_and_column(http: httpx.Client, ns: str) -> None:
    source = flow(ns).replace("io.kestra.plugin.core.log.Log", "io.kestra.plugin.core.log.Lgo")
    r = http.post("/api/v1/flows", content=source, headers=YAML)
    assert r.status_code == 422
    (issue,) = r.json()["issues"]
    assert issue["path"] == "tasks[0].type" and (issue["line"], issue["column"]) == (8, 11)
    assert "io.kestra.plugin.core.log.Log" in issue["message"]  # the suggestion

    broken = http.post("/api/v1/flows", content="id: x\nnamespace: [oops\n", headers=YAML)
    assert broken.status_code == 422 and broken.json()["issues"][0]["line"] == 3
    assert http.post("/api/v1/flows", content=b"\xff\xfe", headers=YAML).status_code == 422
    assert http.post("/api/v1/flows", content="", headers=YAML).status_code == 422
    assert http.post("/api/v1/flows", content="- a\n- b\n", headers=YAML).status_code == 422


def test_update_must_match_the_url(http: httpx.Client, ns: str) -> None:
    deploy(http, flow(ns))
    r = http.put(f"/api/v1/flows/{ns}/hello", content=flow(ns, flow_id="other"), headers=YAML)
    assert r.status_code == 422
    (issue,) = r.json()["issues"]
    assert issue["path"] == "id" and (issue["line"], issue["column"]) == (1, 5)
    missing = http.put(f"/api/v1/flows/{ns}/nope", content=flow(ns, flow_id="nope"),
                       headers=YAML)
    assert missing.status_code == 404


def test_search_and_namespace_listing(http: httpx.Client, ns: str) -> None:
    for name in ("alpha", "beta", "gamma"):
        deploy(http, flow(ns, flow_id=name))
    deploy(http, flow(f"{ns}.child", flow_id="delta"))
    page = http.get("/api/v1/flows/search", params={"namespace": ns, "size": 2}).json()
    assert page["total"] == 4 and len(page["results"]) == 2
    assert "source" not in page["results"][0]
    found = http.get("/api/v1/flows/search", params={"namespace": ns, "q": "AMM"}).json()
    assert [f["id"] for f in found["results"]] == ["gamma"]
    listed = http.get(f"/api/v1/flows/{ns}.child").json()
    assert [f["id"] for f in listed] == ["delta"]
    assert http.get("/api/v1/flows/search", params={"size": 0}).status_code == 422


def test_validate_several_documents(http: httpx.Client, ns: str) -> None:
    body = flow(ns, flow_id="good") + "---\n" + flow(ns, flow_id="bad").replace(
        "message: hi", "message: hi\n    nope: 1")
    r = http.post("/api/v1/flows/validate", content=body, headers=YAML)
    assert r.status_code == 200
    good, bad = r.json()
    assert good["valid"] and good["id"] == "good" and good["issues"] == []
    assert not bad["valid"] and bad["index"] == 1
    (issue,) = bad["issues"]
    # Lines count from the start of the whole body: the second document starts on line 10.
    assert issue["path"] == "tasks[0].nope" and issue["line"] == 20
    assert http.get(f"/api/v1/flows/{ns}/good").status_code == 404  # nothing saved


def test_namespace_sync(http: httpx.Client, ns: str) -> None:
    deploy(http, flow(ns, flow_id="old"))
    deploy(http, flow(ns, flow_id="kept"))
    body = flow(ns, flow_id="kept", message="changed") + "---\n" + flow(ns, flow_id="new")
    r = http.post(f"/api/v1/flows/{ns}", content=body, headers=YAML)
    assert r.status_code == 200, r.text
    result = r.json()
    assert sorted((f["id"], f["revision"]) for f in result["updated"]) == [("kept", 2),
                                                                           ("new", 1)]
    assert result["deleted"] == [{"namespace": ns, "id": "old"}]
    assert http.get(f"/api/v1/flows/{ns}/old").status_code == 404

    wrong = http.post(f"/api/v1/flows/{ns}", content=flow("elsewhere"), headers=YAML)
    assert wrong.status_code == 422 and wrong.json()["issues"][0]["path"] == "namespace"
    assert http.get(f"/api/v1/flows/{ns}/kept").json()["revision"] == 2  # nothing changed
