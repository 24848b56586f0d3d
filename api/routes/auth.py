"""The web UI's login: ``POST /auth/login`` opens a cookie session, ``POST /auth/logout``
ends it, ``GET /auth/me`` says who is logged in. Scripts keep using basic auth or tokens.

Login is the one route open without credentials (``kray.api.auth.OPEN_PATHS``); its failures
are rate-limited per client address and user name, and cost the same time whether the user
exists or not (the password check always runs).
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from kray.api.auth import SESSION_COOKIE, Authenticator, LoginLimiter, SessionStore, cookie
from kray.api.deps import responses
from kray.api.errors import error, issue
from kray.api.responses import JSON
from kray.executor_store import RequestError

router = APIRouter(prefix="/auth", tags=["Auth"])

MAX_BODY = 4096
ANONYMOUS = "anonymous"  # who "logs in" when auth is disabled


class Credentials(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=200)]
    password: Annotated[str, Field(max_length=1024)]


class Me(BaseModel):
    username: str
    authEnabled: bool = True


def _auth(request: Request) -> tuple[Authenticator, SessionStore, LoginLimiter]:
    state = request.app.state
    return state.authenticator, state.sessions, state.login_limiter


async def _credentials(request: Request) -> Credentials:
    """The JSON body, each bad field named (a form-encoded body is refused: JSON only keeps
    a cross-site form from logging a victim in as someone else)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise RequestError(f"the body is larger than {MAX_BODY} bytes", "body")
    try:
        data = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as e:
        raise RequestError(f"invalid JSON: {e}", "body") from None
    if not isinstance(data, dict):
        raise RequestError('send a JSON object {"username": ..., "password": ...}', "body")
    for field in ("username", "password"):
        if not isinstance(data.get(field), str):
            raise RequestError(f"{field} is required (a string)", field)
    try:
        return Credentials(username=data["username"], password=data["password"])
    except ValueError as e:
        field = "username" if "username" in str(e) else "password"
        raise RequestError(f"{field}: invalid length", field) from None


@router.post("/login", response_model=Me, responses={
    **responses(401, 422), 429: {"description": "Too many failed logins; see Retry-After"}},
    summary="Log in: opens a session held in the kray_session cookie (for the web UI)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": Credentials.model_json_schema()}}}})
async def login(request: Request) -> Response:
    authenticator, sessions, limiter = _auth(request)
    given = await _credentials(request)
    if not authenticator.enabled:
        return JSON({"username": given.username or ANONYMOUS, "authEnabled": False})
    client = request.client.host if request.client else ""
    wait = limiter.retry_after(client, given.username)
    if wait > 0:
        return error(429, "too many failed logins: try again later",
                     [issue("too many failed logins", "password")],
                     headers={"Retry-After": str(math.ceil(wait))})
    user = await asyncio.to_thread(authenticator.check_password, given.username,
                                   given.password)
    if user is None:
        limiter.failed(client, given.username)
        return error(401, "wrong user name or password",
                     [issue("wrong user name or password", "password")])
    limiter.succeeded(client, given.username)
    sessions.end(cookie(request.scope, SESSION_COOKIE))  # no fixation of an older session
    response = JSON({"username": user, "authEnabled": True})
    response.set_cookie(SESSION_COOKIE, sessions.create(user), httponly=True,
                        samesite="strict", path="/", secure=request.url.scheme == "https")
    return response


@router.post("/logout", status_code=204, response_class=Response, responses=responses(401),
             summary="Log out: ends the cookie's session")
async def logout(request: Request) -> Response:
    _, sessions, _ = _auth(request)
    sessions.end(cookie(request.scope, SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=Me, responses=responses(401),
            summary="Who the request is authenticated as")
async def me(request: Request) -> Response:
    authenticator, _, _ = _auth(request)
    if not authenticator.enabled:
        return JSON({"username": ANONYMOUS, "authEnabled": False})
    return JSON({"username": request.scope.get("state", {}).get("principal", ANONYMOUS),
                 "authEnabled": True})


__all__ = ["router"]
