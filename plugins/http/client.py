"""What the HTTP tasks share: their properties, the guarded client, and safe logging.

Secrets never reach a log line: values read with ``secret()`` are masked by the task's
masker already; on top of that every ``Authorization``/``Proxy-Authorization``/``Cookie``
header value, the ``auth`` credentials and the user info of the URL (``user:pass@``) are
registered with the masker before anything is logged, and the request line is logged with
the URL's user info replaced.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import httpx
from kray.plugins.http.guard import AddressPolicy, BlockedAddress, GuardedTransport
from pydantic import Field, field_validator

from kray.errors import TaskError
from kray.task import Model, RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext

SCHEME = "kray://"
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                               "x-api-key", "api-key"})
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_TIMEOUT = 60.0
_METHOD = re.compile(r"^[A-Z][A-Z-]{0,19}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)B?\s*$", re.IGNORECASE)


class HttpAuth(Model):
    """``options.auth``: ``{type: BASIC, username, password}`` or ``{type: BEARER, token}``."""

    type: Literal["BASIC", "BEARER"]
    username: str | None = None
    password: str | None = None
    token: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class HttpOptions(Model):
    """``options:`` of the HTTP tasks. Durations are ISO-8601 (``PT30S``)."""

    timeout: timedelta | None = Field(None, description="Default for every timeout below.")
    connect_timeout: timedelta | None = None
    read_timeout: timedelta | None = None
    follow_redirects: bool = True
    allow_failed: bool = Field(False, description="A 4xx/5xx response does not fail the task.")
    allowed_response_codes: list[int] | None = Field(
        None, description="When set, any other response code fails the task.")
    max_content_length: int | str | None = Field(
        None, description="The largest response body accepted, in bytes or e.g. \"10MB\".")
    default_charset: str | None = Field(
        None, description="How to decode a text body whose Content-Type names no charset.")
    basic_auth_user: str | None = None
    basic_auth_password: str | None = None
    auth: HttpAuth | None = None
    # Accepted for Kestra compatibility; kray does not use them.
    connection_pool_idle_timeout: Any = None
    read_idle_timeout: Any = None
    logs: Any = None


class SslOptions(Model):
    insecure_trust_all_certificates: bool = False


def parse_size(value: int | str) -> int:
    """``"10MB"`` -> 10485760 (powers of 1024)."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if m is None:
        raise TaskError(f"'{value}' is not a size (e.g. 1048576 or \"10MB\")")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[
        m.group(2).upper()]


def display_url(url: httpx.URL | str) -> str:
    """The URL as it may be logged: user info replaced by ``******``."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    if parsed.userinfo:
        parsed = parsed.copy_with(username="******", password=None)
    return str(parsed)


def headers_output(response: httpx.Response) -> dict[str, list[str]]:
    """Response headers as Kestra gives them: name (as sent) -> every value."""
    out: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for raw_name, raw_value in response.headers.raw:
        name = raw_name.decode("latin-1")
        key = names.setdefault(name.lower(), name)
        out.setdefault(key, []).append(raw_value.decode("latin-1"))
    return out


class HttpTask(RunnableTask):
    """Properties shared by ``Request`` and ``Download``."""

    uri: str = Field(description="The http(s) URL to call.")
    method: str = "GET"
    body: str | dict[str, Any] | list[Any] | None = Field(
        None, description="The request body; a mapping or list is sent as JSON.")
    content_type: str | None = None
    headers: dict[str, Any] | None = None
    form_data: dict[str, Any] | None = Field(
        None, description="Form fields, URL-encoded; with contentType multipart/form-data, "
                          "kray:// values are uploaded as files.")
    options: HttpOptions = Field(default_factory=HttpOptions)
    allow_failed: bool = False
    ssl_options: SslOptions | None = None

    # -- building the request --------------------------------------------------------------
    def _masker(self, ctx: RunContext) -> Any:
        return getattr(ctx, "masker", None)

    def _secret(self, ctx: RunContext, value: Any) -> None:
        masker = self._masker(ctx)
        if masker is not None and isinstance(value, str) and value:
            masker.add(value)

    def _url(self, ctx: RunContext) -> httpx.URL:
        text = ctx.render_str(self.uri).strip()
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL as exc:
            raise TaskError(f"invalid uri: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise TaskError(f"uri must be an http:// or https:// URL, got '{display_url(text)}'"
                            if url.scheme in ("http", "https") else
                            f"uri must be an http:// or https:// URL, got scheme "
                            f"'{url.scheme or '(none)'}'")
        if url.password:
            self._secret(ctx, url.password)
        return url

    def _method(self, ctx: RunContext) -> str:
        method = ctx.render_str(self.method).strip().upper()
        if not _METHOD.match(method):
            raise TaskError(f"invalid HTTP method '{method}'")
        return method

    def _headers(self, ctx: RunContext) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in (ctx.render(self.headers) or {}).items():
            values = value if isinstance(value, list) else [value]
            for one in values:
                text = "" if one is None else str(one)
                if str(name).lower() in SENSITIVE_HEADERS:
                    self._secret(ctx, text)
                    self._secret(ctx, text.split(" ", 1)[-1])  # "Bearer <token>"
                out.append((str(name), text))
        return out

    def _auth(self, ctx: RunContext) -> httpx.Auth | None:
        options = self.options
        auth = options.auth
        if auth is not None and auth.type == "BEARER":
            token = ctx.render_str(auth.token)
            if not token:
                raise TaskError("options.auth: a BEARER auth needs a token")
            self._secret(ctx, token)
            return _BearerAuth(token)
        user = auth.username if auth is not None else options.basic_auth_user
        password = auth.password if auth is not None else options.basic_auth_password
        if user is None and password is None:
            return None
        user, password = ctx.render_str(user), ctx.render_str(password)
        self._secret(ctx, password)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._secret(ctx, token)  # what the Authorization header carries
        return httpx.BasicAuth(user, password)

    def _timeout(self) -> httpx.Timeout:
        o = self.options
        default = o.timeout.total_seconds() if o.timeout else DEFAULT_TIMEOUT
        connect = o.connect_timeout or o.timeout
        read = o.read_timeout or o.timeout
        return httpx.Timeout(default,
                             connect=connect.total_seconds() if connect else
                             min(DEFAULT_CONNECT_TIMEOUT, default),
                             read=read.total_seconds() if read else default)

    @contextmanager
    def _content(self, ctx: RunContext, headers: list[tuple[str, str]]) -> Iterator[
            dict[str, Any]]:
        """The body arguments of ``httpx.Client.stream``; upload files stay open inside."""
        content_type = ctx.render_str(self.content_type).strip() if self.content_type else ""
        multipart = content_type.lower().startswith("multipart/form-data")
        with ExitStack() as stack:
            kwargs: dict[str, Any] = {}
            if self.form_data is not None:
                form = ctx.render(self.form_data) or {}
                if multipart:
                    files, data = {}, {}
                    for key, value in form.items():
                        if isinstance(value, str) and value.startswith(SCHEME):
                            try:
                                f = stack.enter_context(ctx.storage.open(value, "rb"))
                            except FileNotFoundError:
                                raise TaskError(f"formData.{key}: file not found: "
                                                f"{value}") from None
                            files[str(key)] = (value.rsplit("/", 1)[-1], f)
                        else:
                            data[str(key)] = _form_value(value)
                    kwargs.update(files=files, data=data)
                    content_type = ""  # httpx sets it, with the boundary
                else:
                    kwargs["data"] = {str(k): _form_value(v) for k, v in form.items()}
            elif self.body is not None:
                body = ctx.render(self.body)
                if isinstance(body, (dict, list)):
                    kwargs["content"] = json.dumps(body).encode("utf-8")
                    content_type = content_type or "application/json"
                else:
                    kwargs["content"] = str(body).encode("utf-8")
            if content_type:
                headers[:] = [h for h in headers if h[0].lower() != "content-type"]
                headers.append(("Content-Type", content_type))
            yield kwargs

    @contextmanager
    def _send(self, ctx: RunContext) -> Iterator[httpx.Response]:
        """Send the request (following redirects through the guard) and yield the response,
        its body not read yet. Transport errors become ``TaskError``s."""
        method, url = self._method(ctx), self._url(ctx)
        headers = self._headers(ctx)
        auth = self._auth(ctx)
        verify = not (self.ssl_options and self.ssl_options.insecure_trust_all_certificates)
        shown = display_url(url)
        with self._content(ctx, headers) as content, httpx.Client(
                transport=GuardedTransport(AddressPolicy.from_env(), verify=verify),
                follow_redirects=self.options.follow_redirects, timeout=self._timeout(),
                auth=auth, trust_env=False) as client:
            ctx.logger.info(f"{method} {shown}")
            try:
                with client.stream(method, url, headers=headers, **content) as response:
                    for hop in response.history:
                        ctx.logger.debug(f"redirected: {hop.status_code} "
                                         f"{display_url(hop.url)}")
                    ctx.logger.info(f"HTTP {response.status_code} {response.reason_phrase} "
                                    f"from {method} {display_url(response.url)}")
                    yield response
            except BlockedAddress:
                raise
            except httpx.TimeoutException as exc:
                raise TaskError(f"{method} {shown} timed out ({type(exc).__name__})") from None
            except httpx.TooManyRedirects:
                raise TaskError(f"{method} {shown}: too many redirects") from None
            except httpx.HTTPError as exc:
                raise TaskError(f"{method} {shown} failed: {type(exc).__name__}: "
                                f"{exc}") from None

    def _status_ok(self, code: int) -> bool:
        allowed = self.options.allowed_response_codes
        if allowed is not None:
            return code in allowed
        return code < 400 or self.allow_failed or self.options.allow_failed

    def _check_status(self, response: httpx.Response, body: str = "") -> None:
        """Fail the task unless the response code is accepted (with a snippet of the body)."""
        if self._status_ok(response.status_code):
            return
        snippet = body.strip().replace("\n", " ")[:200]
        raise TaskError(f"{response.request.method} {display_url(response.url)} returned HTTP "
                        f"{response.status_code} {response.reason_phrase}"
                        + (f": {snippet}" if snippet else ""))

    def _max_length(self) -> int | None:
        raw = self.options.max_content_length
        return None if raw is None else parse_size(raw)


class _BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _form_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
