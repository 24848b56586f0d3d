"""Take the README's screenshots of the web UI: start a throwaway `kray server local`, seed it
with example flows, executions and KV entries through the API, and save PNGs of the main pages
with Debian's headless Chromium (driven by Playwright) into docs/screenshots/.

Usage: python scripts/screenshots.py [--out docs/screenshots] [--keep-server]

Build the UI first (python scripts/build_ui.py): the server serves kray/webui. Each page is a
function in SHOTS taking (page, base_url, seeded) so more pages can be added in one place.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
NS = "company.data"

ETL = f"""id: etl_daily
namespace: {NS}
description: Extract, transform in parallel, branch on the mode, then load.
inputs:
  - id: day
    type: DATE
    required: false
  - id: limit
    type: INT
    defaults: 10
  - id: mode
    type: SELECT
    values: [fast, full]
    defaults: fast
tasks:
  - id: extract
    type: io.kestra.plugin.core.log.Log
    message: "extracting {{{{ inputs.limit }}}} rows"
  - id: transform
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: clean
        type: io.kestra.plugin.core.log.Log
        message: cleaning
      - id: enrich
        type: io.kestra.plugin.core.log.Log
        message: enriching
  - id: check_mode
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.mode == 'fast' }}}}"
    then:
      - id: quick_load
        type: io.kestra.plugin.core.log.Log
        message: quick load
    else:
      - id: full_load
        type: io.kestra.plugin.core.log.Log
        message: full load
      - id: reindex
        type: io.kestra.plugin.core.log.Log
        message: reindex
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: done
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: the ETL failed
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""

HELLO = """id: hello_world
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}!"
"""

FAILING = """id: flaky_report
namespace: company.team
tasks:
  - id: fetch
    type: io.kestra.plugin.core.log.Log
    message: fetching
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: upstream API returned 503
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "KRAY_DATA_DIR")}
    env["KRAY_BASIC_AUTH"] = f"admin:{password}"
    log = open(data_dir.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen([sys.executable, "-m", "kray.cli", "server", "local", "--data-dir",
                             str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                            start_new_session=True)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not start in time")


def seed(client: httpx.Client) -> dict[str, Any]:
    """Flows, a few executions (one failed) and KV entries, so the pages have content."""
    yaml = {"Content-Type": "application/x-yaml"}
    for source in (ETL, HELLO, FAILING):
        client.post("/api/v1/flows", content=source, headers=yaml).raise_for_status()
    ids = []
    for ns, flow, inputs in ((NS, "etl_daily", {"mode": "full"}), ("company.team", "hello_world", {}),
                             ("company.team", "flaky_report", {}), (NS, "etl_daily", {})):
        r = client.post(f"/api/v1/executions/{ns}/{flow}", data=inputs)
        r.raise_for_status()
        ids.append(r.json()["id"])
    for key, value in (("api_endpoint", '"https://api.example.com/v2"'), ("batch_size", "500"),
                       ("settings", '{"retries": 3, "regions": ["eu", "us"]}')):
        client.put(f"/api/v1/namespaces/{NS}/kv/{key}", content=value,
                   headers={"Content-Type": "application/json"}).raise_for_status()
    client.post(f"/api/v1/namespaces/{NS}/files", params={"path": "/scripts/transform.sql"},
                files={"fileContent": ("transform.sql", b"SELECT id, upper(name) AS name\n"
                                                        b"FROM raw.customers\nWHERE active;\n")}
                ).raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [client.get(f"/api/v1/executions/{i}").json()["state"] for i in ids]
        if all(s in ("SUCCESS", "FAILED", "WARNING", "KILLED") for s in states):
            break
        time.sleep(0.5)
    return {"executions": ids}


def shot_flows(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/flows")
    page.wait_for_selector("[data-testid=state-badge]")
    page.screenshot(path=str(out / "flows.png"))


def shot_editor(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/flows/{NS}/etl_daily")
    page.wait_for_selector(".cm-content")
    page.get_by_test_id("validation-summary").wait_for()
    page.screenshot(path=str(out / "flow-editor.png"))


def shot_topology(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/flows/{NS}/etl_daily?tab=topology")
    page.wait_for_selector("[data-testid=topology] g.node")
    time.sleep(0.3)
    page.screenshot(path=str(out / "topology.png"))


def shot_execute(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/flows/{NS}/etl_daily")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("execute-dialog").wait_for()
    page.screenshot(path=str(out / "execute-dialog.png"))


def shot_kv(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/kv?namespace={NS}")
    page.wait_for_selector("[data-testid=kv-row-settings]")
    page.screenshot(path=str(out / "kv.png"))


SHOTS: list[Callable[[Any, str, dict[str, Any], Path], None]] = [
    shot_flows, shot_editor, shot_topology, shot_execute, shot_kv,
]


# ---- the execution pages: an ETL with stored files, a run still going, 2,000 task runs ----
SLOW = """id: slow_sync
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
  - id: work
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: fast
        type: io.kestra.plugin.core.log.Log
        message: a quick one
      - id: wait
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT300S
  - id: bye
    type: io.kestra.plugin.core.log.Log
    message: "bye {{ inputs.name }}"
"""

BIG = """id: big_foreach
namespace: company.team
description: A ForEach of 2,000 task runs, to show the Gantt and logs stay fast.
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(1, 2000) | list }}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.log.Log
        message: "processing item {{ taskrun.value }}"
"""

ENDED = ("SUCCESS", "FAILED", "WARNING", "KILLED")


def _wait_state(client: httpx.Client, execution_id: str, states: tuple[str, ...],
                timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/api/v1/executions/{execution_id}").json()["state"] in states:
            return
        time.sleep(0.5)


def seed_executions(client: httpx.Client) -> dict[str, Any]:
    """examples/etl.yaml (stored CSV files to preview), a 2,000-run ForEach, the failing flow,
    and one left running (a Sleep) for the live Gantt."""
    yaml = {"Content-Type": "application/x-yaml"}
    for source in ((ROOT / "examples" / "etl.yaml").read_text(), SLOW, BIG):
        client.post("/api/v1/flows", content=source, headers=yaml).raise_for_status()

    def start(ns: str, flow: str, labels: list[str] | None = None) -> str:
        r = client.post(f"/api/v1/executions/{ns}/{flow}", params={"labels": labels or []})
        r.raise_for_status()
        return str(r.json()["id"])

    ids = {"etl": start("demo", "etl", ["team:data", "env:prod"]),
           "big": start("company.team", "big_foreach"),
           "failed": start("company.team", "flaky_report", ["team:ops"])}
    for execution_id in ids.values():
        _wait_state(client, execution_id, ENDED)
    ids["running"] = start("company.team", "slow_sync", ["env:dev"])
    _wait_state(client, ids["running"], ("RUNNING",), timeout=30)
    time.sleep(3)  # into its Sleep
    return {"run": ids}


def _execution(page: Any, base: str, execution_id: str, tab: str, ready: str) -> None:
    page.goto(f"{base}/executions/{execution_id}" + (f"?tab={tab}" if tab else ""))
    page.wait_for_selector(ready)
    time.sleep(0.8)


def shot_executions(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    page.goto(f"{base}/executions")
    page.wait_for_selector("[data-testid=execution-row]")
    page.wait_for_selector("[data-testid=executions-table][data-stale=false]")
    page.screenshot(path=str(out / "executions.png"))


def shot_gantt(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["etl"], "", "[data-testid=gantt-row]")
    page.screenshot(path=str(out / "execution-gantt.png"))


def shot_gantt_live(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["running"], "", "[data-testid=gantt-row][data-task-id=wait]")
    page.screenshot(path=str(out / "execution-live.png"))


def shot_gantt_2000(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["big"], "", "[data-testid=gantt-row]")
    page.screenshot(path=str(out / "execution-gantt-2000.png"))


def shot_logs(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["big"], "logs", "[data-testid=log-line]")
    page.screenshot(path=str(out / "execution-logs.png"))


def shot_execution_topology(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["failed"], "topology", "[data-testid=topology] g.node")
    page.screenshot(path=str(out / "execution-topology.png"))


def shot_outputs(page: Any, base: str, seeded: dict[str, Any], out: Path) -> None:
    _execution(page, base, seeded["run"]["etl"], "outputs", "[data-testid=preview-button]")
    page.get_by_test_id("preview-button").first.click()
    page.get_by_test_id("preview-table").wait_for()
    page.screenshot(path=str(out / "execution-outputs.png"))


SHOTS += [shot_executions, shot_gantt, shot_gantt_live, shot_gantt_2000, shot_logs,
          shot_execution_topology, shot_outputs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kray-shots-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        proc = start_server(data, port, password)
        try:
            wait_healthy(proc, base)
            with httpx.Client(base_url=base, auth=("admin", password), timeout=60) as client:
                seeded = seed(client)
                seeded.update(seed_executions(client))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                r = page.request.post(f"{base}/api/v1/auth/login",
                                      data={"username": "admin", "password": password})
                assert r.status == 200, r.text()
                for shot in SHOTS:
                    shot(page, base, seeded, args.out)
                    print(f"saved {shot.__name__[5:]}")
                browser.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
