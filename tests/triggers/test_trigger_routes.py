"""The webhook route and the trigger routes, over HTTP to a real server (uvicorn on
127.0.0.1, the app factory, the session's executor)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.api.conftest import LiveServer, deploy, wait_state

pytestmark = pytest.mark.ray

KEY = "k3y-" + uuid.uuid4().hex


def hooked(ns: str) -> str:
    return f"""id: hooked
namespace: {ns}
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ inputs.who }}}} {{{{ trigger.parameters.page[0] ?? '-' }}}}
      {{{{ trigger.headers['x-tag'][0] ?? '-' }}}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
    inputs:
      who: "{{{{ trigger.body.name ?? 'anonymous' }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{{{ trigger.body.kind != 'skip' }}}}"
  - id: raw
    type: kray.core.trigger.Webhook
    key: raw-{KEY}
"""


@pytest.fixture
def ns() -> str:
    return f"wh{uuid.uuid4().hex[:10]}"


def test_webhook_starts_the_flow_with_its_request_as_data(live_server: LiveServer,
                                                          http: httpx.Client, ns: str) -> None:
    deploy(http, hooked(ns))
    url = f"{live_server.url}/api/v1/executions/webhook/{ns}/hooked/{KEY}"
    body = {"name": "{{ secret('E2E_TOKEN') }}", "kind": "run"}
    r = httpx.post(url, params={"page": "2"}, json=body,  # no credentials: the key is enough
                   headers={"X-Tag": "t1", "Authorization": "Bearer not-for-the-flow"})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["namespace"] == ns and created["flowId"] == "hooked"
    doc = wait_state(http, created["id"], {"SUCCESS", "FAILED"})
    assert doc["state"] == "SUCCESS", doc
    # The body is data: its template text reaches the task untouched, never rendered.
    assert doc["taskRuns"][0]["outputs"]["value"] == "{{ secret('E2E_TOKEN') }} 2 t1"
    trigger = doc["trigger"]
    assert trigger["body"] == body and trigger["parameters"] == {"page": ["2"]}
    assert trigger["headers"]["x-tag"] == ["t1"] and "authorization" not in trigger["headers"]

    text = httpx.put(f"{live_server.url}/api/v1/executions/webhook/{ns}/hooked/raw-{KEY}",
                     content=b"plain words")
    assert text.status_code == 200
    assert wait_state(http, text.json()["id"], {"SUCCESS"})["trigger"]["body"] == "plain words"
    got = httpx.get(f"{live_server.url}/api/v1/executions/webhook/{ns}/hooked/raw-{KEY}")
    assert got.status_code == 200 and got.json()["trigger"]["body"] is None


def test_webhook_answers_204_404_and_413(live_server: LiveServer, http: httpx.Client,
                                         ns: str) -> None:
    deploy(http, hooked(ns))
    base = f"{live_server.url}/api/v1/executions/webhook/{ns}"
    assert httpx.post(f"{base}/hooked/{KEY}", json={"kind": "skip"}).status_code == 204
    for url in (f"{base}/hooked/wrong-key", f"{base}/nope/{KEY}",
                f"{live_server.url}/api/v1/executions/webhook/other/hooked/{KEY}"):
        r = httpx.post(url, json={"kind": "run"})
        assert r.status_code == 404 and r.json()["message"], url
    big = httpx.post(f"{base}/hooked/{KEY}", content=b"x" * (10 * 1024 * 1024 + 1))
    assert big.status_code == 413
    assert httpx.delete(f"{base}/hooked/{KEY}").status_code == 405


def test_disable_search_and_enable_triggers(live_server: LiveServer, http: httpx.Client,
                                            ns: str) -> None:
    deploy(http, hooked(ns))
    hook = f"{live_server.url}/api/v1/executions/webhook/{ns}/hooked/{KEY}"
    assert httpx.get(f"{live_server.url}/api/v1/triggers/search").status_code == 401
    r = http.post("/api/v1/triggers/set-disabled/by-triggers", json={
        "triggers": [{"namespace": ns, "flowId": "hooked", "triggerId": "hook"}],
        "disabled": True})
    assert r.status_code == 200 and r.json() == {"count": 1}
    assert httpx.post(hook, json={"kind": "run"}).status_code == 404
    found = http.get("/api/v1/triggers/search", params={"namespace": ns}).json()
    assert found["total"] == 2
    states = {t["abstractTrigger"]["id"]: t["triggerContext"]["disabled"]
              for t in found["results"]}
    assert states == {"hook": True, "raw": False}
    assert http.get(f"/api/v1/triggers/{ns}/hooked").json()["total"] == 2
    assert http.get("/api/v1/triggers/search", params={"q": "raw", "namespace": ns}
                    ).json()["total"] == 1
    r = http.put("/api/v1/triggers", json={"namespace": ns, "flowId": "hooked",
                                           "triggerId": "hook", "disabled": False})
    assert r.status_code == 200 and r.json()["triggerContext"]["disabled"] is False
    assert httpx.post(hook, json={"kind": "run", "name": "x"}).status_code == 200
    r = http.put("/api/v1/triggers", json={"namespace": ns, "flowId": "hooked",
                                           "triggerId": "nope", "disabled": False})
    assert r.status_code == 404
    assert http.delete(f"/api/v1/flows/{ns}/hooked").status_code == 204
    deadline = time.time() + 10
    while http.get("/api/v1/triggers/search", params={"namespace": ns}).json()["total"] \
            and time.time() < deadline:
        time.sleep(0.05)
    assert http.get("/api/v1/triggers/search", params={"namespace": ns}).json()["total"] == 0
    assert httpx.post(hook, json={"kind": "run"}).status_code == 404


def test_backfill_through_the_api(http: httpx.Client, ns: str) -> None:
    deploy(http, f"""id: yearly
namespace: {ns}
inputs:
  - id: tag
    type: STRING
    defaults: scheduled
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.tag }}}} {{{{ trigger.date }}}}"
triggers:
  - id: new_year
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@yearly"
""")
    ref = {"namespace": ns, "flowId": "yearly", "triggerId": "new_year"}
    r = http.put("/api/v1/triggers", json={**ref, "backfill": {
        "start": "2020-01-01T00:00:00Z", "end": "2022-06-01T00:00:00Z",
        "inputs": {"tag": "{{ not rendered }}"}, "labels": [{"key": "run", "value": "bf"}]}})
    assert r.status_code == 200, r.text
    deadline = time.time() + 30
    while time.time() < deadline:
        ctx = http.get(f"/api/v1/triggers/{ns}/yearly").json()["results"][0]["triggerContext"]
        if ctx["backfill"] is None:
            break
        time.sleep(0.05)
    assert ctx["lastBackfill"]["executions"] == 3
    page = http.get("/api/v1/executions/search", params={"namespace": ns, "size": 10}).json()
    assert page["total"] == 3
    for doc in page["results"]:
        doc = wait_state(http, doc["id"], {"SUCCESS"})
        assert doc["labels"]["run"] == "bf"
        assert doc["taskRuns"][0]["outputs"]["value"] == \
            f"{{{{ not rendered }}}} {doc['trigger']['date']}"
    again = http.put("/api/v1/triggers", json={**ref, "backfill": {
        "start": "2030-01-01T00:00:00Z"}})
    assert again.status_code == 422
    paused = http.put("/api/v1/triggers/backfill/pause", json=ref)
    assert paused.status_code == 409  # no backfill running any more
