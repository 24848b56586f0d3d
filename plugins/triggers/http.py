"""``kray.http.Trigger``: call a URL every ``interval``; start an execution when
``responseCondition`` holds for the response.

Each poll sends the request (httpx, async) and renders ``responseCondition`` (default
``{{ response.statusCode < 400 }}``) with ``response`` = ``{statusCode, code, uri, headers,
body}``; when it is truthy, one execution starts with the same values in ``trigger.*``
(``trigger.body`` is the JSON value of the body when it parses, else its text; ``json()``
accepts both, so Kestra's ``json(trigger.body).price`` works). The message id is the poll's
slot (see ``polling``), so a poll retried after a crash never starts a second execution.

Connections go through the same address guard as the HTTP tasks (``kray.plugins.http.guard``:
no cloud metadata or link-local addresses, ``KRAY_HTTP_DENY``), checked on the addresses a
name resolves to, at connect time. A response that cannot be had (refused, timed out, too
large, blocked) is a ``SourceError``: the actor shows it and backs off.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

import orjson
from pydantic import Field, field_validator

from kray.plugins.http.client import HttpAuth, SslOptions, parse_size
from kray.task import Model
from kray.triggers.models import PollingTrigger
from kray.triggers.sources import register_source
from kray.triggers.sources.base import Message, SourceError
from kray.triggers.sources.polling import PollingSource, Renderer, iso_us, poll_id

DEFAULT_CONDITION = "{{ response.statusCode < 400 }}"
MAX_BODY = 10 << 20  # what a response body may weigh by default (it lands in trigger.body)
_METHOD = re.compile(r"^[A-Z][A-Z-]{0,19}$")


def _templated(value: str) -> bool:
    return "{{" in value or "{%" in value


class HttpTriggerOptions(Model):
    """``options:`` as the HTTP tasks take them (those that mean something for a poll)."""

    timeout: timedelta | None = None
    connect_timeout: timedelta | None = None
    read_timeout: timedelta | None = None
    follow_redirects: bool = True
    max_content_length: int | str | None = Field(
        None, description="The largest response body accepted, in bytes or e.g. \"1MB\" "
                          "(default 10MB).")
    default_charset: str | None = None
    basic_auth_user: str | None = None
    basic_auth_password: str | None = None
    auth: HttpAuth | None = None
    # Accepted for Kestra compatibility; the condition decides, these do not apply.
    allow_failed: Any = None
    allowed_response_codes: Any = None
    connection_pool_idle_timeout: Any = None
    read_idle_timeout: Any = None
    logs: Any = None

    @field_validator("max_content_length")
    @classmethod
    def _size(cls, v: int | str | None) -> int | str | None:
        if v is not None:
            parse_size(v)
        return v


class HttpTrigger(PollingTrigger):
    """Poll ``uri`` every ``interval``; one execution when ``responseCondition`` holds."""

    kind: ClassVar[str] = "Http"
    unrendered: ClassVar[frozenset[str]] = frozenset({"response_condition"})

    uri: str
    method: str = "GET"
    headers: dict[str, Any] | None = None
    body: str | dict[str, Any] | list[Any] | None = None
    content_type: str | None = None
    response_condition: str = DEFAULT_CONDITION
    options: HttpTriggerOptions = Field(default_factory=HttpTriggerOptions)
    ssl_options: SslOptions | None = None

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        text = v.strip()
        if not _templated(text) and not re.match(r"^https?://[^/\s]", text, re.IGNORECASE):
            raise ValueError(f"uri must be an http:// or https:// URL, got '{text[:100]}'")
        return text

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        text = v.strip().upper()
        if not _templated(v) and not _METHOD.match(text):
            raise ValueError(f"invalid HTTP method '{v}'")
        return text if not _templated(v) else v

    @field_validator("response_condition")
    @classmethod
    def _condition(cls, v: str) -> str:
        from kray.errors import TemplateError
        from kray.templating import TemplateEngine

        try:
            TemplateEngine().check(v)  # a syntax error fails at deploy, with its message
        except TemplateError as e:
            raise ValueError(f"not a valid template: {e}") from None
        return v


register_source(HttpTrigger, "kray.plugins.triggers.http:HttpSource",
                "kray.http.Trigger", "io.kestra.plugin.core.http.Trigger",
                "io.kestra.plugin.fs.http.Trigger")


# -- the source (runs in the trigger actor) -------------------------------------------------

class HttpSource(PollingSource):
    """One request per poll; one message when the condition holds."""

    trigger: HttpTrigger

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        super().__init__(trigger, position, context)
        self.renderer = Renderer(self.context)
        self._client: Any = None

    async def open(self) -> None:
        import httpx

        t: HttpTrigger = self.trigger
        verify = not (t.ssl_options and t.ssl_options.insecure_trust_all_certificates)
        self._client = httpx.AsyncClient(
            transport=guarded_transport(verify), follow_redirects=t.options.follow_redirects,
            timeout=_timeout(t.options), trust_env=False)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001 - closing never raises
                pass

    async def poll(self, slot_us: int, max_messages: int) -> list[Message]:
        response = await self._request()
        if not self.renderer.condition(self.trigger.response_condition,
                                       {"response": response}, "responseCondition"):
            return []
        return [Message(poll_id(slot_us), {**response, "date": iso_us(slot_us)}, slot_us)]

    async def _request(self) -> dict[str, Any]:
        """Send the rendered request; the response as ``trigger.*`` shows it."""
        import httpx
        from kray.plugins.http.guard import BlockedAddress

        if self._client is None:
            await self.open()
        t, r = self.trigger, self.renderer
        url = str(t.uri).strip()
        method = str(t.method).strip().upper()
        if not _METHOD.match(method):
            raise SourceError(f"method: invalid HTTP method '{method}'")
        headers = _headers(t.headers or {}, r)
        content = self._content(headers)
        auth = _auth(t.options, r)
        shown = display_url(url)
        limit = parse_size(t.options.max_content_length or MAX_BODY)
        try:
            async with self._client.stream(method, url, headers=headers, content=content,
                                           auth=auth) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise SourceError(f"{method} {shown}: the response body is larger "
                                          f"than {limit} bytes (options.maxContentLength)")
                body = _decode(bytes(data), response.charset_encoding
                               or t.options.default_charset)
                return {"uri": display_url(str(response.url)), "statusCode":
                        response.status_code, "code": response.status_code,
                        "headers": _headers_out(response.headers.raw), "body": body}
        except SourceError:
            raise
        except httpx.InvalidURL as e:
            raise SourceError(f"uri: invalid URL '{shown}': {r.mask(str(e))}") from None
        except httpx.HTTPError as e:
            raise SourceError(f"{method} {shown} failed: {type(e).__name__}: "
                              f"{r.mask(str(e))}") from None
        except BlockedAddress as e:
            raise SourceError(f"{method} {shown}: {e}") from None

    def _content(self, headers: list[tuple[str, str]]) -> bytes | None:
        t = self.trigger
        content_type = str(t.content_type or "").strip()
        content: bytes | None = None
        if t.body is not None:
            body = t.body
            if isinstance(body, (dict, list)):
                content = orjson.dumps(body)
                content_type = content_type or "application/json"
            else:
                content = str(body).encode("utf-8")
        if content_type:
            headers[:] = [h for h in headers if h[0].lower() != "content-type"]
            headers.append(("Content-Type", content_type))
        return content


def _timeout(options: HttpTriggerOptions) -> Any:
    import httpx

    default = options.timeout.total_seconds() if options.timeout else 30.0
    connect = options.connect_timeout or options.timeout
    read = options.read_timeout or options.timeout
    return httpx.Timeout(default, connect=connect.total_seconds() if connect else
                         min(10.0, default), read=read.total_seconds() if read else default)


def _headers(rendered: dict[str, Any], renderer: Renderer) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in rendered.items():
        for one in value if isinstance(value, list) else [value]:
            text = "" if one is None else str(one)
            if str(name).lower() in ("authorization", "proxy-authorization", "cookie",
                                     "x-api-key", "api-key"):
                renderer.hide(text, text.split(" ", 1)[-1])
            out.append((str(name), text))
    return out


def _auth(options: HttpTriggerOptions, renderer: Renderer) -> Any:
    import httpx

    auth = options.auth
    if auth is not None and auth.type == "BEARER":
        token = auth.token
        if not token:
            raise SourceError("options.auth: a BEARER auth needs a token")
        renderer.hide(token)
        return _Bearer(token)
    user = auth.username if auth is not None else options.basic_auth_user
    password = auth.password if auth is not None else options.basic_auth_password
    if user is None and password is None:
        return httpx.USE_CLIENT_DEFAULT
    user = user or ""
    password = password or ""
    renderer.hide(password)
    return httpx.BasicAuth(user, password)


class _Bearer:
    """``Authorization: Bearer <token>`` (an httpx auth flow)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _headers_out(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Response headers, names lower-cased, each with every value it came with."""
    out: dict[str, list[str]] = {}
    for name, value in raw:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def _decode(data: bytes, charset: str | None) -> Any:
    """The body's JSON value when it parses, else its text; None when empty. Data only."""
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset the server made up
        return data.decode("utf-8", errors="replace")


def display_url(url: str) -> str:
    """The URL as it may be shown: user info replaced by ``******``."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@?#]*@", r"\1******@", url)


# -- the address guard, async ----------------------------------------------------------------

def guarded_transport(verify: bool) -> Any:
    """An httpx async transport whose every connection (redirects included) is checked by the
    HTTP tasks' ``AddressPolicy`` against the addresses the host resolves to, and made to
    exactly the address checked (no DNS rebinding in between)."""
    import httpcore
    import httpx
    from kray.plugins.http.guard import AddressPolicy, ssl_context

    policy = AddressPolicy.from_env()

    class GuardedBackend(httpcore.AnyIOBackend):
        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None,
                              socket_options: Iterable[Any] | None = None) -> Any:
            import asyncio
            import socket

            policy.check_host(host)
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise httpcore.ConnectError(f"cannot resolve '{host}': {e.strerror}") from e
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            for address in addresses:
                policy.check_address(host, address)
            error: Exception | None = None
            for address in addresses:
                try:
                    return await super().connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                    error = e
            assert error is not None
            raise error

    class GuardedTransport(httpx.AsyncHTTPTransport):
        def __init__(self) -> None:  # no super().__init__: the pool is all httpx uses
            context: ssl.SSLContext = ssl_context(verify)
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=context, max_connections=4, keepalive_expiry=5.0,
                network_backend=GuardedBackend())

    return GuardedTransport()


__all__ = ["HttpSource", "HttpTrigger"]
