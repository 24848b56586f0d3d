"""HTTP tasks: ``Request`` (the response in the outputs) and ``Download`` (the response body
streamed to internal storage). Both go through the address guard (``guard``)."""

from __future__ import annotations

import re
from email.message import Message
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from kray.plugins.http.client import SCHEME, HttpTask, display_url, headers_output
from pydantic import Field

from kray.errors import TaskError

if TYPE_CHECKING:
    from kray.context import RunContext

K = "io.kestra.plugin.core.http."
CHUNK = 1 << 16
REQUEST_MAX_BODY = 10 << 20  # a Request keeps the body in its outputs: Download larger ones
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Request(HttpTask):
    """Send an HTTP request; outputs ``uri`` (the final URL), ``code``, ``headers`` (name ->
    list of values) and ``body`` (the response decoded as text).

    A response code of 400 or more fails the task, unless ``allowFailed`` (or
    ``options.allowFailed``); ``options.allowedResponseCodes`` lists the codes accepted
    instead. The body is limited to ``options.maxContentLength`` (default 10 MB): use
    ``Download`` for larger responses. Link-local and cloud metadata addresses are refused
    (see ``docs/plugins.md``).
    """

    type_name: ClassVar[str] = "kray.http.Request"
    aliases: ClassVar[tuple[str, ...]] = (K + "Request", "io.kestra.plugin.fs.http.Request",
                                          "io.kestra.core.tasks.http.Request")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        limit = self._max_length() or REQUEST_MAX_BODY
        with self._send(ctx) as response:
            data = bytearray()
            for chunk in response.iter_bytes(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise TaskError(f"the response body is larger than {limit} bytes; raise "
                                    "options.maxContentLength or use http.Download")
            body = _decode(bytes(data), response, self.options.default_charset)
            self._check_status(response, body)
            return {"uri": display_url(response.url), "code": response.status_code,
                    "headers": headers_output(response), "body": body}


class Download(HttpTask):
    """Download a file to internal storage, streaming (never held in memory): outputs
    ``uri`` (the ``kray://`` file), ``code``, ``length`` (bytes) and ``headers``.

    The file is named after the response's ``Content-Disposition`` file name, else the last
    segment of the URL's path. ``failOnEmptyResponse`` (default true) fails the task when the
    body is empty; ``options.maxContentLength`` caps the size.
    """

    type_name: ClassVar[str] = "kray.http.Download"
    aliases: ClassVar[tuple[str, ...]] = (K + "Download", "io.kestra.plugin.fs.http.Download",
                                          "io.kestra.core.tasks.http.Download")

    fail_on_empty_response: bool = Field(True, description="Fail when the body is empty.")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        limit = self._max_length()
        with self._send(ctx) as response:
            if not self._status_ok(response.status_code):
                preview = next(response.iter_bytes(1024), b"")
                self._check_status(response, preview.decode("utf-8", "replace"))
            name = _file_name(response, self.id)
            uri = f"{SCHEME}/{ctx.storage_path(name)}"
            length = 0
            with ctx.storage.open(uri, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    length += len(chunk)
                    if limit is not None and length > limit:
                        raise TaskError(f"the response body is larger than "
                                        f"options.maxContentLength ({limit} bytes)")
                    out.write(chunk)
            if length == 0 and self.fail_on_empty_response:
                ctx.storage.delete(uri)
                raise TaskError(f"{response.request.method} {display_url(response.url)} "
                                "returned an empty body (failOnEmptyResponse)")
            ctx.logger.info(f"downloaded {length} bytes to {uri}")
            return {"uri": uri, "code": response.status_code, "length": length,
                    "headers": headers_output(response)}


def _decode(data: bytes, response: httpx.Response, default: str | None) -> str:
    charset = response.charset_encoding or default or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset named by the server
        return data.decode("utf-8", errors="replace")


def _file_name(response: httpx.Response, fallback: str) -> str:
    """A safe storage file name for the response: Content-Disposition's, the URL's last path
    segment, or ``fallback``; only ``[A-Za-z0-9._-]``, never hidden, at most 100 chars."""
    candidates: list[str] = []
    disposition = response.headers.get("content-disposition")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            candidates.append(name)
    candidates.append(response.url.path.rsplit("/", 1)[-1])
    for raw in candidates:
        name = _SAFE_NAME.sub("_", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
        if name:
            return name[-100:]
    return fallback


TASKS = [Request, Download]
