"""Authentication: HTTP basic auth and bearer API tokens, as pure ASGI middleware.

Every path answers 401 without valid credentials, except ``/health`` and the webhook route
(``/api/v1/executions/webhook/{namespace}/{flowId}/{key}``, which its key authenticates).
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
import time
from collections import OrderedDict
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from kray.api.responses import encode
from kray.config import AuthSettings, hash_password, hash_token, read_tokens, verify_password

OPEN_PATHS = frozenset({"/health"})
# Exactly the webhook's shape: a shorter path under it must not slip through unauthenticated.
OPEN_PATTERN = re.compile(r"^/api/v1/executions/webhook/[^/]+/[^/]+/[^/]+/?$")
CACHE_SIZE = 1024
TOKEN_RELOAD_EVERY = 1.0  # seconds between looks at tokens.json


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


class AuthMiddleware:
    """Pure ASGI: answers 401 before routing when credentials are missing or wrong."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.enabled \
                or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"]
                       if k == b"authorization"), None)
        principal = await self.auth.authenticate(header)
        if principal is None:
            await _unauthorized(scope, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _unauthorized(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = encode({"message": "authentication required: HTTP basic auth or a bearer token",
                   "issues": [{"message": "missing or invalid credentials",
                               "path": "Authorization", "in": "header", "file": None,
                               "line": None, "column": None}]})
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Basic realm="kray", Bearer')]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["Authenticator", "AuthMiddleware", "is_open", "OPEN_PATHS"]
