"""KV entries (types, TTL) and namespace files over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api.conftest import deploy

pytestmark = pytest.mark.ray


def test_kv_types_list_get_delete(http: httpx.Client, ns: str) -> None:
    kv = f"/api/v1/namespaces/{ns}/kv"
    assert http.put(f"{kv}/text", content="plain words",
                    headers={"Content-Type": "text/plain"}).json()["type"] == "STRING"
    assert http.put(f"{kv}/num", json=42).json() == {**http.get(f"{kv}/num").json()}
    assert http.get(f"{kv}/num").json()["type"] == "NUMBER"
    assert http.put(f"{kv}/obj", json={"a": [1, 2]}).json()["value"] == {"a": [1, 2]}
    assert http.put(f"{kv}/flag", content="true").json()["type"] == "BOOLEAN"
    day = http.put(f"{kv}/day", content="2024-01-15", params={"type": "DATE"}).json()
    assert (day["type"], day["value"]) == ("DATE", "2024-01-15")
    keys = [e["key"] for e in http.get(kv).json()]
    assert keys == ["day", "flag", "num", "obj", "text"]

    assert http.delete(f"{kv}/num").status_code == 204
    assert http.get(f"{kv}/num").status_code == 404
    assert http.delete(f"{kv}/num").status_code == 404

    bad_type = http.put(f"{kv}/x", content="abc", params={"type": "NUMBER"})
    assert bad_type.status_code == 422 and bad_type.json()["issues"][0]["path"] == "value"
    assert http.put(f"{kv}/x", content="1", params={"type": "NOPE"}).status_code == 422
    assert http.put(f"{kv}/x", content="").status_code == 422
    assert http.put(f"{kv}/x", content="null").status_code == 422
    assert http.put(f"{kv}/x", content="{bad",
                    headers={"Content-Type": "application/json"}).status_code == 422
    assert http.put(f"{kv}/bad key", content="1").status_code == 422
    assert http.get("/api/v1/namespaces/Bad..NS/kv").status_code == 422


def test_kv_ttl(http: httpx.Client, ns: str) -> None:
    kv = f"/api/v1/namespaces/{ns}/kv"
    short = http.put(f"{kv}/short", json="soon gone", headers={"ttl": "PT1S"}).json()
    assert short["expiresAt"] is not None
    long = http.put(f"{kv}/long", json="stays", params={"ttl": "3600"}).json()
    assert long["expiresAt"] > short["expiresAt"]
    time.sleep(1.2)
    assert http.get(f"{kv}/short").status_code == 404
    assert [e["key"] for e in http.get(kv).json()] == ["long"]
    for ttl in ("soon", "-PT1S", "0", "nan"):
        r = http.put(f"{kv}/x", json=1, params={"ttl": ttl})
        assert r.status_code == 422 and r.json()["issues"][0]["path"] == "ttl", ttl


def test_kv_is_what_flows_read(http: httpx.Client, ns: str) -> None:
    http.put(f"/api/v1/namespaces/{ns}/kv/greeting", json="bonjour")
    deploy(http, f"""id: reader
namespace: {ns}
tasks:
  - id: read
    type: io.kestra.plugin.core.kv.Get
    key: greeting
outputs:
  - id: value
    type: STRING
    value: "{{{{ outputs.read.value }}}}"
""")
    ex = http.post(f"/api/v1/executions/{ns}/reader", params={"wait": True}).json()
    assert ex["outputs"] == {"value": "bonjour"}


def test_namespace_files(http: httpx.Client, ns: str) -> None:
    files = f"/api/v1/namespaces/{ns}/files"
    up = http.post(files, params={"path": "/scripts/run.sh"},
                   files={"fileContent": ("run.sh", b"echo hi\n")})
    assert up.status_code == 200, up.text
    assert up.json() == {"path": "/scripts/run.sh", "size": 8,
                         "uri": f"kray:///{ns}/_files/scripts/run.sh"}
    raw = http.post(files, params={"path": "data.csv"}, content=b"a,b\n1,2\n",
                    headers={"Content-Type": "application/octet-stream"})
    assert raw.status_code == 200
    listing = http.get(f"{files}/directory").json()
    assert [f["path"] for f in listing] == ["/data.csv", "/scripts/run.sh"]
    sub = http.get(f"{files}/directory", params={"path": "/scripts"}).json()
    assert [f["path"] for f in sub] == ["/scripts/run.sh"]
    assert http.get(files, params={"path": "scripts/run.sh"}).content == b"echo hi\n"

    deploy(http, f"""id: reads
namespace: {ns}
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read('data.csv') | trim }}}}"
""")
    ex = http.post(f"/api/v1/executions/{ns}/reads", params={"wait": True}).json()
    assert ex["state"] == "SUCCESS"

    assert http.delete(files, params={"path": "data.csv"}).status_code == 204
    assert http.get(files, params={"path": "data.csv"}).status_code == 404
    assert http.delete(files, params={"path": "data.csv"}).status_code == 404
    for bad in ("../secrets", "a/../../b", "a//b", "x/*.sh", "%2e%2e/x"):
        r = http.get(files, params={"path": bad})
        assert r.status_code == 422 and r.json()["issues"][0]["path"] == "path", bad
    assert http.post(files, params={"path": "x"}, files={"other": ("a", b"a")}
                     ).status_code == 422
