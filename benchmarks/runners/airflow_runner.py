"""Airflow 3, in its own venv: ``airflow standalone`` (LocalExecutor, SQLite, its API server
on 127.0.0.1), started here as a child, with Airflow's defaults except what the benchmark
needs (no example DAGs, DAGs unpaused at creation, the port) and, with ``--idle-sleep``, the
scheduler's idle sleep (default 1 s).

Runs are triggered over the REST API (``POST /api/v2/dags/{id}/dagRuns``) and followed by
polling it. Task times are the task instances' ``start_date``/``end_date``; wall time is from
the trigger to the run seen ended.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from common import CHAIN_HEAVY, CHAIN_LIGHT, FANOUT, FOREACH  # noqa: E402

DAGS = {"chain40-light": "bench_chain40_light", "chain10-heavy": "bench_chain10_heavy",
        "fanout": "bench_fanout", "foreach100": "bench_foreach100", "api": "bench_api"}
EXPECTED = {"chain40-light": CHAIN_LIGHT, "chain10-heavy": CHAIN_HEAVY, "fanout": FANOUT + 2,
            "foreach100": FOREACH}
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runner:
    def __init__(self, idle_sleep: str | None) -> None:
        self.idle_sleep = idle_sleep
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.token = ""

    def _http(self, method: str, path: str, body: dict | None = None,
              timeout: float = 120) -> dict:
        """One API call. A GET that times out is asked again (twice): Airflow's API server,
        busy with a wide DAG run on two cores, sometimes stalls for tens of seconds."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(3 if method == "GET" else 1):
            req = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return json.loads(r.read() or b"null")
            except TimeoutError:
                if attempt == 2 or method != "GET":
                    raise
                print(f"airflow API: {method} {path} timed out; asking again", file=sys.stderr)
        raise AssertionError("unreachable")

    def setup(self, _: dict) -> dict:
        home = Path(tempfile.mkdtemp(prefix="airflow-bench-"))
        (home / "dags").mkdir()
        shutil.copy(HERE / "airflow_dags.py", home / "dags" / "bench_dags.py")
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({"admin": PASSWORD}))
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AIRFLOW_HOME=str(home),
                   AIRFLOW__CORE__LOAD_EXAMPLES="False",
                   AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
                   AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
                   AIRFLOW__API__HOST="127.0.0.1", AIRFLOW__API__PORT=str(port),
                   AIRFLOW__API__BASE_URL=self.base,
                   AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base}/execution/",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        if self.idle_sleep:
            env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] = self.idle_sleep
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"),
                                      "standalone"], env=env, stdout=sys.stderr,
                                     stderr=sys.stderr)
        deadline = time.time() + 600
        while True:  # the API answers, we can log in, and every DAG is parsed
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited with {self.proc.returncode}")
            try:
                if not self.token:
                    self.token = self._http("POST", "/auth/token",
                                            {"username": "admin",
                                             "password": PASSWORD})["access_token"]
                for dag_id in DAGS.values():
                    self._http("GET", f"/api/v2/dags/{dag_id}")
                break
            except (urllib.error.URLError, OSError, KeyError):
                if time.time() > deadline:
                    raise
                time.sleep(1)
        version = self._http("GET", "/api/v2/version")["version"]
        return {"versions": {"airflow": version}, "python": sys.version.split()[0],
                "api": self.base, "idle_sleep": self.idle_sleep or "1 (default)"}

    def _trigger(self, dag_id: str) -> str:
        return self._http("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                          {"logical_date": None})["dag_run_id"]

    def _wait(self, dag_id: str, run_id: str, poll: float = 0.1) -> dict:
        quoted = urllib.request.quote(run_id, safe="")
        while True:
            run = self._http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")
            if run["state"] == "success":
                return run
            if run["state"] == "failed":
                raise RuntimeError(f"dag run {run_id} failed")
            time.sleep(poll)

    def run(self, command: dict) -> dict:
        workload = command["workload"]
        dag_id = DAGS[workload]
        t0 = time.perf_counter()
        run_id = self._trigger(dag_id)
        run = self._wait(dag_id, run_id)
        wall = time.perf_counter() - t0
        quoted = urllib.request.quote(run_id, safe="")
        tis, offset = [], 0
        while True:
            page = self._http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances"
                                     f"?limit=100&offset={offset}")
            tis += page["task_instances"]
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                break
        spans = [(common.epoch(t["start_date"]), common.epoch(t["end_date"]))
                 for t in tis if t.get("start_date") and t.get("end_date")]
        extra = {"compute": common.compute_seconds() * CHAIN_HEAVY} \
            if workload == "chain10-heavy" else {}
        return common.result(wall, spans, sequential=workload != "fanout",
                             tasks_expected=EXPECTED[workload],
                             engine_start=common.epoch(run["start_date"]),
                             engine_end=common.epoch(run["end_date"]), **extra)

    def api(self, command: dict) -> dict:
        dag_id = DAGS["api"]
        out = common.load_test(lambda: self._trigger(dag_id),
                               lambda run_id: self._wait(dag_id, run_id, poll=0.2),
                               command["rates"], command["step_s"], threads=64)
        out["via"] = ("HTTP: POST /api/v2/dags/bench_api/dagRuns, polling "
                      "GET /api/v2/dags/bench_api/dagRuns/{id}")
        return out

    def cleanup(self, _: dict) -> None:
        """Stop ``airflow standalone`` and its children (they share our process group, which
        the harness ends anyway)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    idle = sys.argv[sys.argv.index("--idle-sleep") + 1] if "--idle-sleep" in sys.argv else None
    r = Runner(idle)
    common.serve({"setup": r.setup, "run": r.run, "api": r.api, "cleanup": r.cleanup})
