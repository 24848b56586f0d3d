"""Errors as HTTP answers: every one a JSON body ``{"message", "issues"}``, each issue naming
its field (``path``) and, for YAML, its line and column.

422: a flow, inputs or an argument that is invalid; 404: no such flow, execution, key or file;
409: valid, but the current state forbids it; 503: the executor cannot be reached. Anything
else raised on purpose (a ``KrayError``) is a 400. A 500 is a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kray.api.client import ExecutorUnavailable
from kray.api.responses import JSON
from kray.errors import (ExecutionNotFound, FlowNotFound, FlowValidationError,
                         IllegalTransition, KrayError, StoragePathError)
from kray.executor_store import Conflict, NotFound, RequestError
from kray.storage.kv import KVError

log = logging.getLogger("kray.api")

Handler = Callable[[Request, Any], Awaitable[Response]]


def error(status: int, message: str, issues: list[dict[str, Any]] | None = None,
          headers: dict[str, str] | None = None) -> JSON:
    return JSON({"message": message, "issues": issues or []}, status_code=status,
                headers=headers)


def issue(message: str, path: str = "", location: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"message": message, "path": path, "file": None, "line": None,
                           "column": None}
    if location:
        out["in"] = location
    return out


async def _validation(request: Request, exc: FlowValidationError) -> Response:
    issues = [i.to_dict() for i in exc.issues]
    first = exc.issues[0].message if exc.issues else "invalid"
    return error(422, f"{len(issues)} issue(s): {first}" if len(issues) > 1 else first, issues)


async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
    issues = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else None
        path = ".".join(loc[1:]) if len(loc) > 1 else ""
        issues.append(issue(str(err.get("msg", "invalid")), path, where))
    names = ", ".join(i["path"] or str(i.get("in")) for i in issues)
    return error(422, f"invalid request: {names}", issues)


async def _request_error(request: Request, exc: RequestError) -> Response:
    return error(422, str(exc), [issue(str(exc), exc.field)])


def _simple(status: int, field: str = "") -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        return error(status, str(exc), [issue(str(exc), field)] if field else None)
    return handle


async def _http(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error(exc.status_code, detail, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path template this path resolves to: the first route matching it
    (routes are declared most specific first) and its siblings on the same template.
    Starlette names only the first route's, and one template often has a route per method."""
    import fastapi.routing
    from starlette.routing import Match

    routes = request.app.routes
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    methods: set[str] = set()
    template = None
    scope = {**request.scope, "method": "GET"}
    for route in flatten(routes) if flatten is not None else routes:
        try:
            match, _ = route.matches(scope)
        except Exception:  # a route kind without a path to match
            continue
        if match != Match.NONE and template in (None, route.path):
            template = route.path
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error(500, f"internal error: {type(exc).__name__}")


HANDLERS: dict[Any, Handler] = {
    FlowValidationError: _validation,
    RequestValidationError: _request_validation,
    RequestError: _request_error,
    KVError: _simple(422, "value"),
    StoragePathError: _simple(422, "path"),
    FlowNotFound: _simple(404),
    ExecutionNotFound: _simple(404),
    NotFound: _simple(404),
    Conflict: _simple(409),
    IllegalTransition: _simple(409),
    ExecutorUnavailable: _simple(503),
    KrayError: _simple(400),
    HTTPException: _http,
    Exception: _unexpected,
}

__all__ = ["HANDLERS", "error", "issue"]
