"""kray and raw Ray, in kray's own interpreter, on one embedded Ray (127.0.0.1).

Variants: ``kray`` (fibo computed on the worker by a template in a ``Return`` task, no
subprocess), ``kray-script`` (``python.Script``, one Python process per task: what a user who
writes Python code gets), ``ray`` (the same DAG as plain Ray tasks: the floor).

kray runs with state persisted (DuckDB group commit, the executor's defaults). Task times are
the executor's recorded attempt start/end; wall time is from ``create_execution`` to
``follow`` seeing the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import CHAIN_HEAVY, CHAIN_LIGHT, FANOUT, FIB_HEAVY, FIB_LIGHT, FOREACH  # noqa: E402

NS = "bench"
# fibo(n) in a template, iteratively (a recursive macro costs 1.2 ms for fibo(10) on this
# machine, Python's recursive function 15 us: the loop keeps the compute comparable).
FIBO_TEMPLATE = ("{{% set ns = namespace(a=0, b=1) %}}{{% for i in range({n}) %}}"
                 "{{% set t = ns.a + ns.b %}}{{% set ns.a = ns.b %}}{{% set ns.b = t %}}"
                 "{{% endfor %}}{{{{ ns.a }}}}")


def _return(task_id: str, fmt: str, indent: str = "  ") -> str:
    return (f"{indent}- id: {task_id}\n{indent}  type: io.kestra.plugin.core.debug.Return\n"
            f"{indent}  format: '{fmt}'\n")


def _script(task_id: str, n: int, indent: str = "  ") -> str:
    body = common.FIBO_SOURCE + f"print(fibo({n}))\n"
    lines = "".join(f"{indent}    {line}\n" for line in body.splitlines())
    return (f"{indent}- id: {task_id}\n{indent}  type: io.kestra.plugin.scripts.python.Script\n"
            f"{indent}  script: |\n{lines}")


def _leaf(variant: str, task_id: str, n: int, indent: str = "  ") -> str:
    if variant == "kray-script":
        return _script(task_id, n, indent)
    return _return(task_id, FIBO_TEMPLATE.format(n=n), indent)


def flow_source(workload: str, variant: str) -> tuple[str, str]:
    """(flow id, YAML source) of a workload."""
    flow_id = f"{workload.replace('-', '_')}_{variant.replace('-', '_')}"
    head = f"id: {flow_id}\nnamespace: {NS}\ntasks:\n"
    if workload == "chain40-light":
        body = "".join(_leaf(variant, f"t{i}", FIB_LIGHT) for i in range(CHAIN_LIGHT))
    elif workload == "chain10-heavy":
        body = "".join(_script(f"t{i}", FIB_HEAVY) for i in range(CHAIN_HEAVY))
    elif workload in ("fanout", "foreach100"):
        width, limit = (FANOUT, 0) if workload == "fanout" else (FOREACH, 1)
        # range(0, width - 1): Pebble's range includes its end, so this is `width` values.
        body = (_return("first", "start")
                + f"  - id: loop\n    type: io.kestra.plugin.core.flow.ForEach\n"
                  f"    values: \"{{{{ range(0, {width - 1}) | list }}}}\"\n"
                  f"    concurrencyLimit: {limit}\n    tasks:\n"
                + _return("leaf", "{{ taskrun.value }}", "      ")
                + _return("last", "end"))
        if workload == "foreach100":  # the loop alone: a 100-item loop, one item at a time
            body = (f"  - id: loop\n    type: io.kestra.plugin.core.flow.ForEach\n"
                    f"    values: \"{{{{ range(0, {width - 1}) | list }}}}\"\n"
                    f"    tasks:\n" + _return("leaf", "{{ taskrun.value }}", "      "))
    elif workload == "api":
        body = _return("a", "one") + _return("b", "{{ outputs.a.value }} two")
    else:
        raise ValueError(f"unknown workload {workload}")
    return flow_id, head + body


class Runner:
    def __init__(self) -> None:
        self.ray = None
        self.executor = None
        self.deployed: set[str] = set()
        self.remote = {}
        self.has_wait: bool | None = None
        self.data_dir = ""
        self.server: subprocess.Popen | None = None

    # ------------------------------------------------------------------ setup
    def setup(self, _: dict) -> dict:
        import ray

        import kray
        from kray.executor import ExecutorConfig, executor_actor

        # address="local": always a new Ray of our own on 127.0.0.1. Without it ray.init()
        # joins whatever cluster the machine's last `ray start` recorded in /tmp/ray.
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                 namespace="kray", log_to_driver=False, logging_level="ERROR")
        gcs = ray.get_runtime_context().gcs_address
        if not gcs.startswith("127.0.0.1:"):
            raise RuntimeError(f"Ray is not on 127.0.0.1 ({gcs}): stopping here")
        self.ray = ray
        data = Path(tempfile.mkdtemp(prefix="kray-bench-"))
        self.data_dir = str(data)
        self.executor = executor_actor(ExecutorConfig(data_dir=str(data)))
        pid = ray.get(self.executor.ping.remote())["pid"]
        self._define_remote()
        return {"versions": {"kray": kray.__version__, "ray": ray.__version__},
                "executor_pid": pid, "data_dir": str(data),
                "python": sys.version.split()[0]}

    def _define_remote(self) -> None:
        ray = self.ray

        def fib(n: int) -> int:  # defined here: pickled by value, no import on workers
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        @ray.remote
        def step(prev, n: int) -> tuple:
            started = time.time()
            fib(n)
            return (started, time.time())

        @ray.remote
        def join(*parts) -> tuple:
            started = time.time()
            return (started, time.time())

        self.remote = {"step": step, "join": join}

    # ------------------------------------------------------------------ runs
    def run(self, command: dict) -> dict:
        workload, variant = command["workload"], command["engine"]
        if variant == "ray":
            return self._raw(workload)
        return self._kray(workload, variant)

    def _deploy(self, workload: str, variant: str) -> str:
        flow_id, source = flow_source(workload, variant)
        if flow_id not in self.deployed:
            self.ray.get(self.executor.deploy.remote(source))
            self.deployed.add(flow_id)
        return flow_id

    def _kray(self, workload: str, variant: str) -> dict:
        flow_id = self._deploy(workload, variant)
        t0 = time.perf_counter()
        created = self.ray.get(self.executor.create_execution.remote(NS, flow_id, {}))
        execution = self._wait(created["id"])
        wall = time.perf_counter() - t0
        if execution["state"] != "SUCCESS":
            raise RuntimeError(f"execution {execution['state']}: {execution.get('error')} "
                               f"{[t.get('error') for t in execution['taskRuns'] if t.get('error')][:3]}")
        # Runnable task runs only (the ForEach itself is resolved in the executor).
        runnable = [t for t in execution["taskRuns"] if t["attempts"] and t["taskId"] != "loop"]
        spans = [(common.epoch(t["attempts"][-1]["startDate"]),
                  common.epoch(t["attempts"][-1]["endDate"])) for t in runnable]
        sequential = workload in ("chain40-light", "chain10-heavy", "foreach100")
        expected = {"chain40-light": CHAIN_LIGHT, "chain10-heavy": CHAIN_HEAVY,
                    "fanout": FANOUT + 2, "foreach100": FOREACH}[workload]
        extra = {}
        if workload == "chain10-heavy":
            extra["compute"] = common.compute_seconds() * CHAIN_HEAVY
        return common.result(wall, spans, sequential=sequential, tasks_expected=expected,
                             engine_start=common.epoch(execution["startDate"]),
                             engine_end=common.epoch(execution["endDate"]),
                             task_runs=len(execution["taskRuns"]), **extra)

    def _wait(self, execution_id: str) -> dict:
        """The execution once it ended: ``wait_execution`` (what ``?wait=true`` uses, no
        coalescing) where the executor has it, else ``follow`` (``kray run``'s long poll,
        which coalesces changes for up to 100 ms)."""
        from kray.runner import follow

        if self.has_wait is None:
            from kray.executor import ExecutorService
            self.has_wait = hasattr(ExecutorService, "wait_execution")
        if not self.has_wait:
            return follow(self.executor, execution_id)
        while True:
            answer = self.ray.get(self.executor.wait_execution.remote(execution_id, 30.0))
            if answer["done"]:
                return answer["execution"]

    def _raw(self, workload: str) -> dict:
        ray, step, join = self.ray, self.remote["step"], self.remote["join"]
        t0 = time.perf_counter()
        if workload in ("chain40-light", "chain10-heavy"):
            size, n = (CHAIN_LIGHT, FIB_LIGHT) if workload == "chain40-light" \
                else (CHAIN_HEAVY, FIB_HEAVY)
            refs, ref = [], None
            for _ in range(size):
                ref = step.remote(ref, n)
                refs.append(ref)
            spans = ray.get(refs)
        elif workload == "fanout":
            first = step.remote(None, 0)
            leaves = [step.remote(first, 0) for _ in range(FANOUT)]
            last = join.remote(*leaves)
            spans = ray.get([first, *leaves, last])
        else:  # foreach100: a driver loop, one item at a time
            spans = [ray.get(step.remote(None, 0)) for _ in range(FOREACH)]
        wall = time.perf_counter() - t0
        expected = len(spans)
        extra = {}
        if workload == "chain10-heavy":
            extra["compute"] = common.compute_seconds() * CHAIN_HEAVY
        return common.result(wall, spans, sequential=workload != "fanout",
                             tasks_expected=expected, **extra)

    # ------------------------------------------------------------------ API load
    def api(self, command: dict) -> dict:
        """``kray``: over HTTP, ``POST /api/v1/executions/{ns}/{id}?wait=true`` to ``kray
        server start`` joined to this runner's Ray (same executor). ``kray-actor``: the
        executor actor's own API (``create_execution`` + ``wait_execution``), no HTTP."""
        flow_id = self._deploy("api", "kray")
        if command["engine"] == "kray-actor":
            return self._api_actor(flow_id, command)
        return self._api_http(flow_id, command)

    def _api_actor(self, flow_id: str, command: dict) -> dict:
        executor, ray = self.executor, self.ray

        def trigger():
            return ray.get(executor.create_execution.remote(NS, flow_id, {}))["id"]

        def wait(execution_id):
            if self._wait(execution_id)["state"] != "SUCCESS":
                raise RuntimeError("execution failed")

        out = common.load_test(trigger, wait, command["rates"], command["step_s"])
        out["via"] = "executor actor: create_execution, then wait_execution (no HTTP)"
        return out

    def _api_http(self, flow_id: str, command: dict) -> dict:
        import base64
        import socket
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        gcs = self.ray.get_runtime_context().gcs_address
        env = dict(os.environ, KRAY_BASIC_AUTH="bench:bench-password")
        kray = Path(sys.executable).parent / "kray"
        self.server = subprocess.Popen(
            [str(kray), "server", "start", "--address", gcs, "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", self.data_dir],
            env=env, stdout=sys.stderr, stderr=sys.stderr)
        base = f"http://127.0.0.1:{port}"
        auth = "Basic " + base64.b64encode(b"bench:bench-password").decode()
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=5).read()
                break
            except Exception:
                if self.server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("kray server did not start (see the log)")
                time.sleep(0.5)
        url = f"{base}/api/v1/executions/{NS}/{flow_id}?wait=true"

        def trigger():
            req = urllib.request.Request(url, data=b"", method="POST",
                                         headers={"Authorization": auth})
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())

        def wait(execution):
            if execution.get("state") != "SUCCESS":
                raise RuntimeError(f"execution {execution.get('state')}")

        try:
            out = common.load_test(trigger, wait, command["rates"], command["step_s"])
        finally:
            self._stop_server()
        out["via"] = ("HTTP: POST /api/v1/executions/{ns}/{id}?wait=true (basic auth) to "
                      "kray server start, joined to the same Ray and executor")
        return out

    def _stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.server = None

    def render_cost(self, _: dict) -> dict:
        from kray.templating import TemplateEngine
        engine, template = TemplateEngine(), FIBO_TEMPLATE.format(n=FIB_LIGHT)
        engine.render(template, {})
        t0 = time.perf_counter()
        for _ in range(200):
            engine.render(template, {})
        return {"fibo10_template_ms": (time.perf_counter() - t0) / 200 * 1000,
                "fibo10_python_ms": common.compute_seconds(FIB_LIGHT, 50) * 1000}

    def cleanup(self, _: dict) -> None:
        self._stop_server()
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()


if __name__ == "__main__":
    # Ray 2.60 turns _node_ip_address="127.0.0.1" into the machine's outward address
    # (services.resolve_ip_for_localhost) unless it believes clusters are off: this keeps its
    # GCS, raylet and workers on the loopback, as the harness promises.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    r = Runner()
    common.serve({"setup": r.setup, "run": r.run, "api": r.api, "cleanup": r.cleanup,
                  "render_cost": r.render_cost})
