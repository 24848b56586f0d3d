"""A real API server for the API tests: ``create_app`` under uvicorn on a free 127.0.0.1 port,
in a background thread, on the session's Ray and executor, talked to over HTTP with httpx."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kray.config import Settings, create_token

USER, PASSWORD = "admin", "correct horse battery staple"


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: object
    token: str

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("auth", (USER, PASSWORD))
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    data = tmp_path_factory.mktemp("kray-api")
    token = create_token(data, "tests")
    settings = Settings.load(data, env={"KRAY_BASIC_AUTH": f"{USER}:{PASSWORD}"})
    return settings, token


@pytest.fixture(scope="session")
def live_server(executor, api_settings: tuple[Settings, str]) -> Iterator[LiveServer]:
    import uvicorn

    from kray.api.app import create_app

    settings, token = api_settings
    app = create_app(settings, executor=executor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", settings, app, token)
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


@pytest.fixture
def ns() -> str:
    """A namespace of its own for each test: tests share one executor and repository."""
    return f"t{uuid.uuid4().hex[:10]}"


def deploy(http: httpx.Client, source: str) -> dict:
    r = http.post("/api/v1/flows", content=source,
                  headers={"Content-Type": "application/x-yaml"})
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(http: httpx.Client, execution_id: str, states: set[str],
               timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    doc: dict = {}
    while time.time() < deadline:
        doc = http.get(f"/api/v1/executions/{execution_id}").json()
        if doc.get("state") in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} never reached {states}: {doc.get('state')}")


ROOT = Path(__file__).resolve().parents[2]
