"""Secrets are read from the environment and never appear in logs, outputs or errors."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import pytest

from kray.runner import follow
from tests.conftest import SECRET_KESTRA, SECRET_PLAIN

pytestmark = pytest.mark.ray

FLOW = """id: secrets
namespace: e2e
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message:
      - "token={{ secret('E2E_TOKEN') }}"
      - "b64={{ secret('E2E_TOKEN') | base64encode }}"
      - "url={{ secret('E2E_TOKEN') | urlencode }}"
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "kestra={{ secret('E2E_B64') }}"
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "refused with {{ secret('E2E_TOKEN') }}"
"""


def test_secrets_are_masked_everywhere(ray_session, executor) -> None:
    flow = ray_session.get(executor.deploy.remote(FLOW))
    created = ray_session.get(executor.create_execution.remote(flow["namespace"], flow["id"],
                                                               {}))
    doc = follow(executor, created["id"])
    assert doc["state"] == "FAILED"
    logs = ray_session.get(executor.execution_logs.remote(created["id"]))
    messages = [line["message"] for line in logs]
    assert "token=******" in messages
    assert "b64=******" in messages and "url=******" in messages
    ret = next(t for t in doc["taskRuns"] if t["taskId"] == "ret")
    assert ret["outputs"] == {"value": "kestra=******"}
    fail = next(t for t in doc["taskRuns"] if t["taskId"] == "fail")
    assert fail["error"] == "refused with ******"
    everything = json.dumps(doc) + json.dumps(logs)
    forms = [SECRET_PLAIN, SECRET_KESTRA, base64.b64encode(SECRET_PLAIN.encode()).decode(),
             urllib.parse.quote(SECRET_PLAIN)]
    for form in forms:
        assert form not in everything
    time.sleep(0.3)  # the group commit: what is stored is masked too
    stored = ray_session.get(executor.execution_logs.remote(created["id"]))
    assert all(SECRET_PLAIN not in line["message"] for line in stored)
