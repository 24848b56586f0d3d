"""/health, /metrics, the OpenAPI spec, and bad input never answered with a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import LiveServer, deploy

pytestmark = pytest.mark.ray


def test_health_needs_no_credentials(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/health", timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "UP"}


def test_metrics_in_prometheus_format(http: httpx.Client, ns: str) -> None:
    deploy(http, f"""id: two
namespace: {ns}
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: a
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: b
""")
    before = http.get("/metrics")
    http.post(f"/api/v1/executions/{ns}/two", params={"wait": True})
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['kray_executions{state="SUCCESS"}'] >= 1
    assert samples['kray_executions_ended_total{state="SUCCESS"}'] >= 1
    assert "kray_executions_queued" in samples and "kray_task_runs_inflight" in samples
    count = samples["kray_task_run_duration_seconds_count"]
    assert samples['kray_task_run_duration_seconds_bucket{le="+Inf"}'] == count >= 2
    old = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in before.text.splitlines()
           if ln.startswith("kray_task_run_duration_seconds_count")}
    assert count >= old.get("kray_task_run_duration_seconds_count", 0) + 2
    assert "# TYPE kray_task_run_duration_seconds histogram" in r.text


def test_openapi_spec(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/flows", "/api/v1/flows/{namespace}/{id}/revisions",
                 "/api/v1/executions/{namespace}/{id}", "/api/v1/executions/search",
                 "/api/v1/executions/{executionId}/follow", "/api/v1/logs/{executionId}",
                 "/api/v1/namespaces/{namespace}/kv/{key}", "/api/v1/namespaces/{namespace}/files",
                 "/health", "/metrics"):
        assert path in paths, path
    create = paths["/api/v1/executions/{namespace}/{id}"]["post"]
    assert set(create["requestBody"]["content"]) == {
        "multipart/form-data", "application/x-www-form-urlencoded", "application/json"}
    assert {"200", "401", "404", "422"} <= set(create["responses"])
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert http.get("/docs").status_code == 200


@pytest.mark.parametrize("method,path,kwargs", [
    ("POST", "/api/v1/flows", {"content": b"\x00\x01"}),
    ("POST", "/api/v1/flows", {"content": "id: [unclosed"}),
    ("POST", "/api/v1/flows", {"content": "id: a\nnamespace: b\ntasks: 3\n"}),
    ("POST", "/api/v1/flows", {"content": "&a [*a]"}),
    ("POST", "/api/v1/flows/validate", {"content": "---\n---\n"}),
    ("GET", "/api/v1/flows/UPPER/x", {}),
    ("GET", "/api/v1/flows/ns/x", {"params": {"revision": "-1"}}),
    ("POST", "/api/v1/executions/ns/flow", {"content": b"--xx\r\n",
                                             "headers": {"Content-Type":
                                                         "multipart/form-data; boundary=xx"}}),
    ("GET", "/api/v1/executions/search", {"params": {"startDate": "yesterday"}}),
    ("GET", "/api/v1/executions/search", {"params": {"page": "0"}}),
    ("GET", "/api/v1/executions/search", {"params": {"labels": ":"}}),
    ("POST", "/api/v1/executions/x/change-status", {"params": {"status": "nope"}}),
    ("GET", "/api/v1/executions/x/file", {"params": {"path": "\x00"}}),
    ("PUT", "/api/v1/namespaces/ns/kv/k", {"content": b"\xff"}),
    ("PUT", "/api/v1/namespaces/ns/kv/k", {"content": "1", "params": {"ttl": "P99999999D"}}),
    ("PUT", "/api/v1/namespaces/ns/kv/k", {"content": "1e999"}),
    ("PUT", "/api/v1/namespaces/ns/kv/k", {"content": "123456789012345678901234567890"}),
    ("GET", "/api/v1/namespaces/ns/files", {"params": {"path": "a\\b"}}),
    ("GET", "/api/v1/logs/search", {"params": {"minLevel": "x"}}),
])
def test_bad_input_is_a_4xx_never_a_500(http: httpx.Client, method: str, path: str,
                                       kwargs: dict) -> None:
    r = http.request(method, path, **kwargs)
    assert 400 <= r.status_code < 500 or r.status_code == 200, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["message"] and isinstance(body["issues"], list)
