"""The web UI's static files, served by the API process itself (no Node.js at run time).

The single-page app is built from ``ui/`` into the package folder ``kray/webui/`` (shipped in
the wheel). This pure ASGI middleware sits outside authentication, because these files hold no
data: every ``GET``/``HEAD`` that is not the API's (``/api/...``, ``/health``, ``/metrics``,
``/docs``...) is the UI's:

* ``/assets/<hashed name>``: the file, cached for a year (its name changes with its content);
  a missing one is a 404, never the page (a script answered with HTML only confuses).
* another path naming a file of the build (``/favicon.svg``): that file, revalidated.
* anything else (``/``, ``/flows/ns/id``, ``/executions/x``...): ``index.html``, so that the
  app's client-side router shows the page; never cached, with a strict Content-Security-Policy.

Without a build, ``/`` answers a plain page saying how to make one.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote

from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

# The first path segments the API owns; everything else is the UI's (a test checks that every
# route of the app starts with one of them).
API_SEGMENTS = frozenset({"api", "health", "metrics", "openapi.json", "docs", "redoc"})
IMMUTABLE = "public, max-age=31536000, immutable"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY"}
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kray</title></head>
<body><h1>kray</h1>
<p>The web UI is not built in this installation. From a checkout of the repository, build
it with <code>python scripts/build_ui.py</code> (it needs Node.js and npm once; the result
goes to <code>kray/webui/</code>).</p>
<p>The REST API works without it: see <a href="/docs">/docs</a>.</p>
</body></html>
"""

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("font/woff2", ".woff2")


def webui_dir() -> Path:
    """Where the module reads the build from: the package folder (``kray.api`` and ``kray``
    are siblings both in a checkout and in an installed wheel)."""
    import kray
    return Path(kray.__file__).resolve().parent / "webui"


def is_ui_path(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    first = path.lstrip("/").split("/", 1)[0]
    return first not in API_SEGMENTS


class WebUI:
    """Pure ASGI: answers the UI's paths from ``root``, passes the rest to ``app``."""

    def __init__(self, app: ASGIApp, root: Path | None = None) -> None:
        self.app = app
        self.root = (root or webui_dir()).resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        response = self.respond(scope["path"])
        await response(scope, receive, send)

    def respond(self, path: str) -> Response:
        relative = unquote(path).lstrip("/")
        found = self._file(relative)
        if relative.startswith("assets/"):
            if found is None:
                return _headers(Response("not found\n", status_code=404,
                                         media_type="text/plain"), "no-cache")
            return _headers(FileResponse(found), IMMUTABLE)
        if found is not None and found.name != "index.html":
            return _headers(FileResponse(found), "no-cache")
        index = self.root / "index.html"
        if not index.is_file():
            return _html(HTMLResponse(NOT_BUILT))
        return _html(FileResponse(index, media_type="text/html; charset=utf-8"))

    def _file(self, relative: str) -> Path | None:
        """A file under the root, or None (``..``, links out of it and folders included)."""
        if not relative or "\x00" in relative:
            return None
        try:
            candidate = (self.root / relative).resolve()
        except (OSError, ValueError):
            return None
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate


def _headers(response: Response, cache: str) -> Response:
    response.headers["Cache-Control"] = cache
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _html(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    return _headers(response, "no-cache")


__all__ = ["WebUI", "API_SEGMENTS", "CSP", "is_ui_path", "webui_dir"]
