"""Authentication: HTTP basic auth, bearer API tokens and the web UI's session cookie, as
pure ASGI middleware.

Every path answers 401 without valid credentials, except ``/health``, ``POST
/api/v1/auth/login`` and the webhook route
(``/api/v1/executions/webhook/{namespace}/{flowId}/{key}``, which its key authenticates). The
web UI's static files are served before this middleware (``kray.api.webui``): they hold no data.

The UI logs in once (``/api/v1/auth/login``) and then holds an opaque session id in the
``kray_session`` cookie (HttpOnly, SameSite=Strict), looked up in a server-side store that
forgets a session after 12 idle hours (or when the server restarts). A browser sends cookies
on its own, so a request authenticated by the cookie alone that changes something (POST, PUT,
PATCH, DELETE) must also carry ``X-Kray-UI: 1``: a header a cross-site form cannot set, and a
cross-site script cannot send without a CORS preflight this API never grants (403 otherwise).
Passwords are checked against scrypt hashes in a thread (a check costs tens of milliseconds
of CPU; the event loop never waits on it); a success is remembered by the SHA-256 of the
header, so a client sending the same credentials again costs a dictionary lookup. Tokens are
compared as SHA-256 hashes against every stored hash, in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from kray.api.responses import encode
from kray.config import AuthSettings, hash_password, hash_token, read_tokens, verify_password

LOGIN_PATH = "/api/v1/auth/login"
OPEN_PATHS = frozenset({"/health", LOGIN_PATH})
# Exactly the webhook's shape: a shorter path under it must not slip through unauthenticated.
OPEN_PATTERN = re.compile(r"^/api/v1/executions/webhook/[^/]+/[^/]+/[^/]+/?$")
CACHE_SIZE = 1024
TOKEN_RELOAD_EVERY = 1.0  # seconds between looks at tokens.json
SESSION_COOKIE = "kray_session"
SESSION_IDLE = 12 * 3600.0  # seconds a session lives without being used
MAX_SESSIONS = 10_000  # the oldest-used session goes first beyond it
UI_HEADER = b"x-kray-ui"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_FAILURES = 5  # failed logins per client and user name within LOGIN_WINDOW ...
LOGIN_WINDOW = 60.0  # ... before further attempts answer 429 until the oldest one ages out


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or OPEN_PATTERN.match(path) is not None


class Authenticator:
    """Decides who an ``Authorization`` header belongs to (None: nobody)."""

    def __init__(self, auth: AuthSettings):
        self.enabled = auth.enabled
        self.users = {name.encode(): stored for name, stored in auth.users.items()}
        self.tokens = [t.hash for t in auth.tokens]
        self.tokens_file: Path | None = auth.tokens_file
        self._file_tokens: list[str] = []
        self._file_stamp: float | None = None
        self._next_look = 0.0
        self._accepted: OrderedDict[bytes, str] = OrderedDict()
        self._checking: dict[bytes, asyncio.Future[str | None]] = {}
        self._decoy = hash_password("decoy")  # unknown users cost what known ones do

    async def authenticate(self, header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._token(value.strip())
        if scheme != "basic":
            return None
        key = hashlib.sha256(header.encode()).digest()
        known = self._accepted.get(key)
        if known is not None:
            self._accepted.move_to_end(key)
            return known
        # Requests arriving together with the same new credentials share one check.
        pending = self._checking.get(key)
        if pending is None:
            pending = self._checking[key] = asyncio.ensure_future(
                asyncio.to_thread(self._basic, value.strip()))
            pending.add_done_callback(lambda _: self._checking.pop(key, None))
        user = await asyncio.shield(pending)
        if user is not None:
            self._accepted[key] = user
            while len(self._accepted) > CACHE_SIZE:
                self._accepted.popitem(last=False)
        return user

    def _basic(self, value: str) -> str | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        return self.check_password(name, password)

    def check_password(self, name: str, password: str) -> str | None:
        """``name`` when the password is right (blocking: scrypt costs tens of ms of CPU)."""
        stored = None
        for user, hashed in self.users.items():  # no early exit: timing does not tell names
            if hmac.compare_digest(user, name.encode()):
                stored = hashed
        ok = verify_password(password, stored or self._decoy)
        return name if ok and stored is not None else None

    def _token(self, token: str) -> str | None:
        if not token:
            return None
        presented = hash_token(token).encode()
        found = False
        for stored in self.tokens + self._tokens_from_file():
            found |= hmac.compare_digest(stored.encode(), presented)
        return "token" if found else None

    def _tokens_from_file(self) -> list[str]:
        """Tokens created with ``kray server token create`` while the server runs count
        within a second."""
        now = time.monotonic()
        if self.tokens_file is None or now < self._next_look:
            return self._file_tokens
        self._next_look = now + TOKEN_RELOAD_EVERY
        try:
            stamp = self.tokens_file.stat().st_mtime
        except OSError:
            stamp = None
        if stamp != self._file_stamp:
            self._file_stamp = stamp
            self._file_tokens = [t.hash for t in read_tokens(self.tokens_file)] \
                if stamp is not None else []
        return self._file_tokens


class SessionStore:
    """The UI's login sessions, in memory: opaque random ids (only their SHA-256 is kept, so
    the store's keys are not usable cookies), each forgotten after ``idle`` unused seconds."""

    def __init__(self, idle: float = SESSION_IDLE, limit: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.limit = limit
        self.clock = clock
        self._sessions: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode()).digest()

    def create(self, username: str) -> str:
        session_id = secrets.token_urlsafe(32)
        self._sessions[self._key(session_id)] = (username, self.clock() + self.idle)
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return session_id

    def user(self, session_id: str | None) -> str | None:
        """Who holds this session (None: nobody, or expired); each use slides its expiry."""
        if not session_id:
            return None
        key = self._key(session_id)
        found = self._sessions.get(key)
        if found is None:
            return None
        now = self.clock()
        if found[1] <= now:
            del self._sessions[key]
            return None
        self._sessions[key] = (found[0], now + self.idle)
        self._sessions.move_to_end(key)
        return found[0]

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(self._key(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)


class LoginLimiter:
    """Slows password guessing: at most ``failures`` failed logins per (client address, user
    name) within ``window`` seconds; a success forgets that pair's failures."""

    def __init__(self, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window = window
        self.clock = clock
        self._failed: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, client: str, username: str) -> float:
        """Seconds before this pair may try again (0: now)."""
        times = self._failed.get((client, username.lower()))
        if not times:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.failures:
            return 0.0
        return times[0] + self.window - now

    def failed(self, client: str, username: str) -> None:
        if len(self._failed) > MAX_SESSIONS:  # many pairs: drop the ones with nothing recent
            now = self.clock()
            self._failed = {k: v for k, v in self._failed.items()
                            if v and v[-1] > now - self.window}
        self._failed.setdefault((client, username.lower()), deque()).append(self.clock())

    def succeeded(self, client: str, username: str) -> None:
        self._failed.pop((client, username.lower()), None)


def cookie(scope: Scope, name: str) -> str | None:
    """A cookie of the request (the first one of that name)."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(name)
            if found:
                return found
    return None


class AuthMiddleware:
    """Pure ASGI: answers 401 before routing when credentials are missing or wrong, and 403
    to a cookie-authenticated change without the UI's header."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator,
                 sessions: SessionStore) -> None:
        self.app = app
        self.auth = authenticator
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.enabled \
                or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"]
                       if k == b"authorization"), None)
        principal = await self.auth.authenticate(header)
        if principal is None:
            principal = self.sessions.user(cookie(scope, SESSION_COOKIE))
            if principal is not None and scope.get("method") in UNSAFE_METHODS \
                    and (UI_HEADER, b"1") not in scope["headers"]:
                await _forbidden(send)
                return
        if principal is None:
            await _unauthorized(scope, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _forbidden(send: Send) -> None:
    message = "a change made with the session cookie needs the header X-Kray-UI: 1"
    await _json(send, 403, {"message": message, "issues": [{
        "message": message, "path": "X-Kray-UI", "in": "header", "file": None,
        "line": None, "column": None}]})


async def _json(send: Send, status: int, content: object,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = encode(content)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await _json(send, 401, {
        "message": "authentication required: HTTP basic auth, a bearer token or a session",
        "issues": [{"message": "missing or invalid credentials", "path": "Authorization",
                    "in": "header", "file": None, "line": None, "column": None}]},
        [] if _from_ui(scope) else [(b"www-authenticate", b'Basic realm="kray", Bearer')])


def _from_ui(scope: Scope) -> bool:
    """A request from the web UI (its header, or a session cookie, maybe expired): its 401
    carries no ``WWW-Authenticate``, which would make a browser pop up its own login box
    instead of letting the UI show its login page."""
    return any(k == UI_HEADER or (k == b"cookie" and SESSION_COOKIE.encode() in v)
               for k, v in scope["headers"])


__all__ = ["Authenticator", "AuthMiddleware", "LoginLimiter", "SessionStore", "cookie",
           "is_open", "OPEN_PATHS", "SESSION_COOKIE"]
