"""Prefect 3, in its own venv: flows run in this process against a Prefect server on
127.0.0.1 (started here, SQLite under a temporary PREFECT_HOME, default settings).

Task times are the task runs' ``start_time``/``end_time`` as the server recorded them; wall
time is the flow call in this process. The API load test serves a 2-task flow with
``flow.serve()`` (a child process: each flow run in a subprocess, Prefect's default) and
creates runs over HTTP (``POST /api/deployments/{id}/create_flow_run``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import CHAIN_HEAVY, CHAIN_LIGHT, FANOUT, FIB_HEAVY, FIB_LIGHT, FOREACH  # noqa: E402

HERE = Path(__file__).resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    """One API call; 429/502/503 answers are retried with backoff, as Prefect's own client
    does (its server answers 503 while its SQLite database is busy)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(6):
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code not in (429, 502, 503) or attempt == 5:
                raise
            time.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} (see the log)")
            if time.time() > deadline:
                raise
            time.sleep(0.5)


class Runner:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.flows = None
        self.api_url = ""

    def setup(self, _: dict) -> dict:
        home = tempfile.mkdtemp(prefix="prefect-bench-")
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        os.environ.update(PREFECT_HOME=home, PREFECT_API_URL=self.api_url,
                          PREFECT_SERVER_ANALYTICS_ENABLED="false",
                          DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="WARNING")
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)], stdout=sys.stderr, stderr=sys.stderr, env=os.environ)
        self.procs.append(server)
        wait_http(self.api_url + "/health", server)
        import prefect

        import prefect_flows
        self.flows = {"chain": prefect_flows.chain, "fanout": prefect_flows.fanout,
                      "foreach": prefect_flows.foreach}
        return {"versions": {"prefect": prefect.__version__},
                "python": sys.version.split()[0], "api": self.api_url}

    def run(self, command: dict) -> dict:
        workload = command["workload"]
        flows = self.flows
        t0 = time.perf_counter()
        if workload == "chain40-light":
            state = flows["chain"](CHAIN_LIGHT, FIB_LIGHT, return_state=True)
            expected, sequential = CHAIN_LIGHT, True
        elif workload == "chain10-heavy":
            state = flows["chain"](CHAIN_HEAVY, FIB_HEAVY, return_state=True)
            expected, sequential = CHAIN_HEAVY, True
        elif workload == "fanout":
            state = flows["fanout"](FANOUT, return_state=True)
            expected, sequential = FANOUT + 2, False
        else:
            state = flows["foreach"](FOREACH, return_state=True)
            expected, sequential = FOREACH, True
        wall = time.perf_counter() - t0
        if not state.is_completed():
            raise RuntimeError(f"flow run {state.type}: {state.message}")
        flow_run_id = state.state_details.flow_run_id
        spans, flow_run = self._task_times(flow_run_id, expected)
        extra = {"compute": common.compute_seconds() * CHAIN_HEAVY} \
            if workload == "chain10-heavy" else {}
        return common.result(wall, spans, sequential=sequential, tasks_expected=expected,
                             engine_start=common.epoch(flow_run["start_time"])
                             if flow_run.get("start_time") else None,
                             engine_end=common.epoch(flow_run["end_time"])
                             if flow_run.get("end_time") else None, **extra)

    def _task_times(self, flow_run_id, expected: int) -> tuple[list, dict]:
        """Task runs reach the server through events, a little after the flow returns."""
        deadline = time.time() + 60
        while True:
            runs = http("POST", f"{self.api_url}/task_runs/filter",
                        {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}, "limit": 200,
                         "offset": 0})
            if expected > 200:
                runs += http("POST", f"{self.api_url}/task_runs/filter",
                             {"flow_runs": {"id": {"any_": [str(flow_run_id)]}},
                              "limit": 200, "offset": 200})
            done = [r for r in runs if r.get("start_time") and r.get("end_time")]
            if len(done) >= expected or time.time() > deadline:
                break
            time.sleep(0.2)
        flow_run = http("GET", f"{self.api_url}/flow_runs/{flow_run_id}")
        return [(common.epoch(r["start_time"]), common.epoch(r["end_time"])) for r in done], \
            flow_run

    def api(self, command: dict) -> dict:
        served = subprocess.Popen([sys.executable, str(HERE.parent / "prefect_flows.py")],
                                  stdout=sys.stderr,
                                  stderr=sys.stderr, env=os.environ)
        self.procs.append(served)
        deadline = time.time() + 120
        while True:
            try:
                dep = http("GET", f"{self.api_url}/deployments/name/bench-api/bench-api")
                break
            except Exception:
                if time.time() > deadline or served.poll() is not None:
                    raise RuntimeError("flow.serve() did not register its deployment")
                time.sleep(0.5)
        url = self.api_url

        def trigger():
            return http("POST", f"{url}/deployments/{dep['id']}/create_flow_run", {})["id"]

        def wait(run_id):
            while True:
                run = http("GET", f"{url}/flow_runs/{run_id}")
                kind = (run.get("state") or {}).get("type")
                if kind == "COMPLETED":
                    return
                if kind in ("FAILED", "CRASHED", "CANCELLED"):
                    raise RuntimeError(kind)
                time.sleep(0.05)

        try:
            out = common.load_test(trigger, wait, command["rates"], command["step_s"],
                                   threads=64)
        finally:
            served.terminate()
            served.wait(30)
        out["via"] = ("HTTP: POST /api/deployments/{id}/create_flow_run to a flow.serve() "
                      "process (default poll interval), polling GET /api/flow_runs/{id}")
        return out

    def cleanup(self, _: dict) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    r = Runner()
    common.serve({"setup": r.setup, "run": r.run, "api": r.api, "cleanup": r.cleanup})
