"""``kray server``: the flow folder kept in sync, and ``kray server local`` end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from kray.errors import FlowNotFound
from kray.server import FlowSync

pytestmark = pytest.mark.ray


def flow(ns: str, flow_id: str, message: str = "hi") -> str:
    return (f"id: {flow_id}\nnamespace: {ns}\ntasks:\n  - id: t\n"
            f"    type: io.kestra.plugin.core.log.Log\n    message: {message}\n")


async def _until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def test_flow_folder_stays_in_sync(executor, tmp_path: Path) -> None:
    ns = f"sync{uuid.uuid4().hex[:8]}"
    (tmp_path / "nested").mkdir()
    (tmp_path / "a.yaml").write_text(flow(ns, "a"))
    (tmp_path / "nested" / "b.yml").write_text(flow(ns, "b"))
    (tmp_path / "broken.yaml").write_text("id: broken\nnamespace: x\ntasks: 3\n")
    (tmp_path / "notes.txt").write_text("not a flow")
    said: list[str] = []

    async def revision(flow_id: str) -> int | None:
        try:
            return (await executor.get_flow.remote(ns, flow_id))["revision"]
        except FlowNotFound:
            return None

    async def scenario() -> None:
        sync = FlowSync(executor, tmp_path, said.append)
        await sync.deploy_all()
        assert await revision("a") == 1 and await revision("b") == 1
        assert any("broken.yaml:3" in line for line in said)  # reported with its line
        stop = asyncio.Event()
        watcher = asyncio.create_task(sync.watch(stop))
        await asyncio.sleep(0.5)
        (tmp_path / "a.yaml").write_text(flow(ns, "a", "changed"))

        async def changed() -> bool:
            return await revision("a") == 2
        await _until(changed)
        (tmp_path / "nested" / "b.yml").unlink()

        async def gone() -> bool:
            return await revision("b") is None
        await _until(gone)
        (tmp_path / "c.yaml").write_text(flow(ns, "c"))

        async def added() -> bool:
            return await revision("c") == 1
        await _until(added)
        (tmp_path / "c.yaml").write_text(flow(ns, "renamed"))  # same file, another flow

        async def renamed() -> bool:
            return await revision("renamed") == 1 and await revision("c") is None
        await _until(renamed)
        stop.set()
        await asyncio.wait_for(watcher, 10)

    asyncio.run(scenario())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_server_local_end_to_end(tmp_path: Path) -> None:
    """A real ``kray server local``: its own embedded Ray, a generated password printed once,
    a flow folder deployed, an execution over HTTP, a clean stop on SIGINT."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hello.yaml").write_text(flow("demo", "hello"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "KRAY_BASIC_AUTH")}
    cmd = [sys.executable, "-m", "kray.cli", "server", "local", "--data-dir",
           str(tmp_path / "data"), "--port", str(port), "--flow-path", str(flows)]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        password = next(ln.split()[-1] for ln in text.splitlines()
                        if ln.strip().startswith("password:"))
        assert password not in (tmp_path / "data" / "auth.json").read_text()
        assert httpx.get(f"{url}/api/v1/flows/demo/hello").status_code == 401
        with httpx.Client(base_url=url, auth=("admin", password), timeout=60) as http:
            assert http.get("/api/v1/flows/demo/hello").json()["revision"] == 1
            ex = http.post("/api/v1/executions/demo/hello", params={"wait": True}).json()
            assert ex["state"] == "SUCCESS"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()
    assert log.read_text().count(password) == 1  # printed once
