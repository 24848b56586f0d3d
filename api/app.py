"""The app factory: ``create_app(settings)``.

Routes, middleware, exception handlers and lifespan are all declared here, up front. The app
talks to the executor actor only (``ExecutorClient``); it never opens the DuckDB file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware import Middleware

from kray import __version__
from kray.api.auth import AuthMiddleware, Authenticator, LoginLimiter, SessionStore, is_open
from kray.api.client import ExecutorClient
from kray.api.errors import HANDLERS
from kray.api.routes import auth, executions, flows, logs, namespaces, system, triggers, ui
from kray.api.webui import WebUI
from kray.config import Settings
from kray.executor_store import MAX_FILE_BYTES

API_PREFIX = "/api/v1"
MAX_BODY = MAX_FILE_BYTES + 1024 * 1024  # the largest upload, and its multipart framing
# Order matters where paths overlap: each family lists its literal paths first.
ROUTERS = [(auth.router, API_PREFIX), (ui.router, API_PREFIX), (flows.router, API_PREFIX),
           (executions.router, API_PREFIX), (logs.router, API_PREFIX),
           (namespaces.router, API_PREFIX), (triggers.router, API_PREFIX), (system.router, "")]


def create_app(settings: Settings, *, executor: Any = None) -> FastAPI:
    """The API. ``executor`` is the executor actor's handle; without one, the app joins the
    Ray cluster (``RAY_ADDRESS`` or an embedded one) and finds or starts the executor at
    start-up."""
    authenticator = Authenticator(settings.auth)
    sessions = SessionStore()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        actor = executor
        if actor is None:
            from kray.executor import executor_actor
            from kray.runner import ensure_ray
            ensure_ray()
            actor = executor_actor(settings.executor_config())
        app.state.client = ExecutorClient(actor)
        await app.state.client.call("ping")
        yield

    app = FastAPI(
        title="kray", version=__version__, lifespan=lifespan,
        description="Kestra's flow language on Ray: flows, executions, logs, KV and "
                    "namespace files. Authenticate with HTTP basic auth or a bearer token "
                    "(the web UI logs in with /api/v1/auth/login and a session cookie).",
        # The UI's static files first: they need no credentials (they hold no data).
        middleware=[Middleware(WebUI),
                    Middleware(AuthMiddleware, authenticator=authenticator,
                               sessions=sessions)],
        exception_handlers=HANDLERS,
        max_body_size=MAX_BODY)  # FastAPI >= 0.16x answers 413 beyond it; older ignore it
    app.state.authenticator = authenticator
    app.state.sessions = sessions
    app.state.login_limiter = LoginLimiter()
    for router, prefix in ROUTERS:
        app.include_router(router, prefix=prefix)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, plus the security the middleware enforces: basic or bearer on every
    operation but the open ones, each documenting its 401."""
    if app.openapi_schema is None:
        with warnings.catch_warnings():
            # One route serving several methods (the webhook) shares one operation id; made
            # unique below, per method.
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
        seen: set[str] = set()
        for item in spec.get("paths", {}).values():
            for method, operation in item.items():
                if operation.get("operationId") in seen:
                    operation["operationId"] = f"{operation['operationId']}_{method}"
                seen.add(operation.get("operationId", ""))
        spec.setdefault("components", {})["securitySchemes"] = {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "bearerAuth": {"type": "http", "scheme": "bearer"}}
        spec["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
        for path, item in spec.get("paths", {}).items():
            for operation in item.values():
                if is_open(_sample(path)):
                    operation["security"] = []
                    continue
                operation.setdefault("responses", {}).setdefault("401", {
                    "description": "Missing or invalid credentials",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}}})
                for status, response in operation["responses"].items():
                    # FastAPI gives error bodies the route's own media type (an event
                    # stream, a file); they are JSON whatever the route serves.
                    if status[0] in "45" and "content" in response:
                        schema = next(iter(response["content"].values())).get("schema")
                        response["content"] = {"application/json": {"schema": schema}}
        spec["components"].setdefault("schemas", {})
        app.openapi_schema = spec
    return app.openapi_schema


def _sample(path: str) -> str:
    """A concrete path for a templated one (``{x}`` -> ``x``), to ask ``is_open``."""
    return re.sub(r"\{[^}]+\}", "x", path)


__all__ = ["create_app", "API_PREFIX"]
