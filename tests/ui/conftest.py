"""The browser harness: a real ``kray server local`` subprocess and Debian's headless Chromium
driven by Playwright's Python package (its own browser downloads are never used).

* ``kray_server`` (session): the server on a free 127.0.0.1 port, a data folder of its own and
  ``KRAY_BASIC_AUTH=admin:<random password>``; its embedded Ray is its own, beside the test
  session's (``ray_session`` in tests/conftest.py): both are started with ``address="local"``,
  which picks free ports for everything but the dashboard agent's HTTP port, and Ray lets the
  second agent live without that HTTP service (nothing here uses it). The server is stopped
  by its handle (SIGTERM: a clean stop that shuts its Ray down); whatever of its process tree
  is still alive after that is ended by pid.
* ``browser`` (session) and ``page`` (a fresh context per test, 1440x900).
* ``login(page, server)``: logs the page's context in through the API (the session cookie).

Browser tests are marked ``@pytest.mark.browser`` and ``@pytest.mark.slow``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, skip_or_fail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
START_TIMEOUT = 120.0  # seconds for the server (and its Ray) to answer /health
STOP_TIMEOUT = 60.0  # seconds for a clean stop before its processes are ended by pid
USER = "admin"


@dataclass
class KrayServer:
    url: str
    username: str
    password: str
    data_dir: Path
    log: Path
    pid: int

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client with basic auth, for setting up what a browser test needs."""
        kwargs.setdefault("auth", (self.username, self.password))
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(password: str) -> dict[str, str]:
    """The test session's environment, minus what would point the server at another Ray or
    data folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "KRAY_DATA_DIR", "KRAY_CONFIG", "KRAY_BASIC_AUTH")}
    env["KRAY_BASIC_AUTH"] = f"{USER}:{password}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"kray server exited with {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"kray server did not answer /health in {START_TIMEOUT:.0f}s:\n"
                               f"{log.read_text(errors='replace')}")
        time.sleep(0.25)


def _descendants(pid: int) -> list[Any]:
    import psutil
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def stop_server(proc: subprocess.Popen[bytes]) -> list[int]:
    """Stop the server by its handle, and its own Ray with it. Returns the pids of its
    process tree that had to be ended by force (none when the stop was clean)."""
    import psutil

    tree = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    _, alive = psutil.wait_procs(tree, timeout=15)
    forced = []
    for child in alive:  # only processes this server started, by pid
        try:
            child.kill()
            forced.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    return forced


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], KrayServer]:
    """Start ``kray server local`` with its data under ``folder`` and wait for /health (the
    process is stopped again if it never answers)."""
    password = secrets.token_urlsafe(12)
    port = free_port()
    log = folder / "server.log"
    cmd = [sys.executable, "-m", "kray.cli", "server", "local", "--data-dir",
           str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=_server_env(password), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
    except BaseException:
        stop_server(proc)
        raise
    return proc, KrayServer(url, USER, password, folder / "data", log, proc.pid)


@pytest.fixture(scope="session")
def kray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KrayServer]:
    """A real ``kray server local`` for the whole session (see the module docstring)."""
    proc, server = start_server(tmp_path_factory.mktemp("kray-ui-server"))
    try:
        yield server
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is missing (pip install playwright)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in a fresh context (no cookies shared between tests)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


def login(page: Any, server: KrayServer) -> None:
    """Log the page's browser context in through the API: the session cookie lands in the
    context, so every page and ``page.request`` call after this is authenticated."""
    r = page.request.post(f"{server.url}/api/v1/auth/login",
                          data={"username": server.username, "password": server.password})
    assert r.status == 200, r.text()


__all__ = ["KrayServer", "kray_server", "browser", "page", "login", "free_port",
           "start_server", "stop_server"]
