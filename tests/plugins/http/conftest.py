"""A real HTTP server on 127.0.0.1 for the HTTP task tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = url.path
        if path == "/echo":
            doc = {"method": self.command, "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("utf-8", "replace")}
            self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json",
                                                       "X-Multi": "a"})
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[-1])
            self._send(code, f"status {code} body".encode(), {"Content-Type": "text/plain"})
        elif path == "/redirect":
            self._send(302, b"", {"Location": query["to"]})
        elif path == "/latin1":
            self._send(200, "café".encode("latin-1"),
                       {"Content-Type": "text/plain; charset=ISO-8859-1"})
        elif path == "/files/report.csv":
            self._send(200, b"a,b\n1,2\n", {"Content-Type": "text/csv"})
        elif path == "/attachment":
            self._send(200, b"\x00\x01binary", {
                "Content-Disposition": 'attachment; filename="../../etc/my data.bin"'})
        elif path == "/big":
            size = int(query.get("size", "1000000"))
            self._send(200, b"x" * size, {"Content-Type": "application/octet-stream"})
        elif path == "/empty":
            self._send(200, b"")
        elif path == "/slow":
            time.sleep(float(query.get("s", "2")))
            self._send(200, b"late")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up early (timeouts, size limits) is expected here


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The base URL of a threaded HTTP server on 127.0.0.1 (stopped after the module)."""
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
