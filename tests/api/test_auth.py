"""Auth on by default: every route but /health and the webhook answers 401 without
credentials; basic auth and bearer tokens (hashes only on disk)."""

from __future__ import annotations

import re
import time

import fastapi.routing
import httpx
import pytest

from kray.config import create_token, revoke_token
from tests.api.conftest import PASSWORD, USER, LiveServer

pytestmark = pytest.mark.ray

OPEN = {"/health", "/api/v1/auth/login"}  # login: the UI's way in (test_ui_support.py)
WEBHOOK = "/api/v1/executions/webhook/{namespace}/{flowId}/{key}"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "abc", path)


def every_route(app: object) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app.routes``, included routers flattened (FastAPI
    keeps them as one entry each since 0.16x)."""
    routes = app.routes  # type: ignore[attr-defined]
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    found = []
    for route in flatten(routes) if flatten is not None else routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def test_every_route_but_health_and_webhook_needs_credentials(live_server: LiveServer) -> None:
    routes = every_route(live_server.app)
    paths = {p for _, p in routes}
    assert {"/api/v1/flows", "/api/v1/executions/{executionId}", "/metrics", "/openapi.json",
            "/docs"} <= paths
    assert len(routes) > 30
    spec = {(m.upper(), p) for p, item in live_server.app.openapi()["paths"].items()
            for m in item}
    assert spec <= set(routes)  # every documented operation is enumerated
    checked = 0
    with httpx.Client(base_url=live_server.url, timeout=30) as anonymous:
        for method, path in routes:
            if path in OPEN or path == WEBHOOK:
                continue
            r = anonymous.request(method, concrete(path))
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Basic")
            assert r.json()["issues"][0]["path"] == "Authorization"
            r = anonymous.request(method, concrete(path), headers={"Authorization": "Bearer x"})
            assert r.status_code == 401, (method, path)
            checked += 1
        assert checked == len([r for r in routes if r[1] not in OPEN and r[1] != WEBHOOK])
        # Wrong credentials: the middleware answers before routing, so a few routes tell.
        for path in ("/api/v1/flows/search", "/metrics", "/openapi.json"):
            for auth in ((USER, "wrong"), ("nobody", PASSWORD), (USER, "")):
                assert anonymous.get(path, auth=auth).status_code == 401, (path, auth)
            for header in ("Bearer  x", "Basic !!!", "Basic " + "A" * 10, "Digest x"):
                r = anonymous.get(path, headers={"Authorization": header})
                assert r.status_code == 401, (path, header)
        assert anonymous.get("/health").status_code == 200
        # The webhook's exact shape is open (its key authenticates it); nothing shorter is.
        assert anonymous.post("/api/v1/executions/webhook/ns/flow/key").status_code != 401
        assert anonymous.post("/api/v1/executions/webhook/flow").status_code == 401
        assert anonymous.get("/api/v1/executions/webhook/a/b/c/d").status_code == 401


def test_basic_and_bearer(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        assert c.get("/api/v1/flows/search", auth=(USER, PASSWORD)).status_code == 200
        bearer = {"Authorization": f"Bearer {live_server.token}"}
        assert c.get("/api/v1/flows/search", headers=bearer).status_code == 200
        assert c.get("/metrics", headers=bearer).status_code == 200
        assert c.get("/api/v1/flows/search",
                     headers={"Authorization": f"Bearer {live_server.token}x"}
                     ).status_code == 401


def test_token_created_and_revoked_while_running(live_server: LiveServer) -> None:
    data = live_server.settings.data_dir
    token = create_token(data, "late")
    stored = (data / "tokens.json").read_text()
    assert token not in stored and "sha256:" in stored
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        deadline = time.time() + 5
        while c.get("/api/v1/flows/search", headers=headers).status_code != 200:
            assert time.time() < deadline, "a new token was never accepted"
            time.sleep(0.2)
        assert revoke_token(data, "late")
        deadline = time.time() + 5
        while c.get("/api/v1/flows/search", headers=headers).status_code != 401:
            assert time.time() < deadline, "a revoked token still works"
            time.sleep(0.2)


def test_openapi_declares_the_security(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["basicAuth"]["scheme"] == "basic"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "401" in spec["paths"]["/api/v1/flows"]["post"]["responses"]
