"""Open-loop load on the REST API: executions of a 2-task flow at fixed rates.

    python -m benchmarks.api_load [--duration 30] [--rates 10,25,50,100] [--json]
    python -m benchmarks.api_load --url http://127.0.0.1:8080 --user admin --password ...

Without ``--url`` it starts ``kray server local`` (its own embedded Ray, a fresh data folder)
as a separate process, so the load generator does not share the server's CPU time slices
more than the machine forces it to. The flow is created through the API. Each rate runs for
``--duration`` seconds: request i is sent at t0 + i/rate whatever happened to the ones before
(open loop: a slow server gets a backlog, not a gentler client). Every request is
``POST /api/v1/executions/bench/two?wait=true``, so its latency is request to terminal state.

A rate is *sustained* when at least 99% of its executions ended in SUCCESS and they completed
at >= 95% of the offered rate (within the phase plus a 5 s grace). Reported per rate: p50, p95,
p99 and max latency, completed, failed and unfinished counts, achieved throughput, and (when
it started the server) the CPU time one execution costs each part of the server: the API
process, the executor actor, the Ray task workers, raylet and GCS. That last figure holds
however busy the machine is; the latencies do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from pathlib import Path

import httpx

FLOW = """id: two
namespace: bench
inputs:
  - id: n
    type: INT
    defaults: 0
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n }}"
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: "got {{ outputs.first.value }}"
outputs:
  - id: n
    type: STRING
    value: "{{ outputs.first.value }}"
"""
GRACE = 5.0  # seconds after a phase for its last executions to end
TARGET_P95 = 0.250


@dataclass
class Phase:
    rate: float
    duration: float
    sent: int
    completed: int
    failed: int  # answered, but not with a SUCCESS execution
    unfinished: int  # no answer yet when the phase gave up on it (60 s after its grace)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    achieved_per_s: float
    sustained: bool
    cpu_ms_per_execution: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def one(client: httpx.AsyncClient, n: int, latencies: list[float],
              failures: list[str]) -> float | None:
    started = time.perf_counter()
    try:
        r = await client.post("/api/v1/executions/bench/two", params={"wait": "true"},
                              data={"n": str(n)})
        state = r.json().get("state") if r.status_code == 200 else f"HTTP {r.status_code}"
    except (httpx.HTTPError, ValueError) as e:
        state = type(e).__name__
    took = time.perf_counter() - started
    if state == "SUCCESS":
        latencies.append(took)
        return time.perf_counter()
    failures.append(str(state))
    return None


class CpuMeter:
    """CPU seconds spent by the server's processes (its Ray included), by role: where the
    time of one execution goes, whatever else the machine runs."""

    def __init__(self, pid: int | None):
        self.pid = pid

    def sample(self) -> dict[int, tuple[str, float]]:
        if self.pid is None:
            return {}
        import psutil
        out = {}
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        for p in processes:
            try:
                times = p.cpu_times()
                out[p.pid] = (_role(p, self.pid), times.user + times.system)
            except psutil.Error:
                continue
        return out

    @staticmethod
    def per_execution(before: dict, after: dict, executions: int) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid, (role, t) in after.items():
            if pid in before:
                spent[role] = spent.get(role, 0.0) + t - before[pid][1]
        total = sum(spent.values())
        spent["total"] = total
        return {k: round(v * 1000 / max(executions, 1), 2) for k, v in
                sorted(spent.items(), key=lambda kv: -kv[1])}


def _role(p: Any, root: int) -> str:
    if p.pid == root:
        return "api"
    try:
        cmd = " ".join(p.cmdline())
    except Exception:
        return "other"
    for needle, role in (("ExecutorService", "executor"), ("run_task", "workers"),
                         ("IDLE", "workers"), ("default_worker", "workers"),
                         ("raylet", "raylet"), ("gcs_server", "gcs")):
        if needle in cmd:
            return role
    return "other"


async def phase(client: httpx.AsyncClient, rate: float, duration: float,
                meter: CpuMeter) -> Phase:
    latencies: list[float] = []
    failures: list[str] = []
    tasks = []
    total = int(rate * duration)
    cpu_before = meter.sample()
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(client, i, latencies, failures)))
    done, pending = await asyncio.wait(tasks, timeout=GRACE + 60)
    cpu = CpuMeter.per_execution(cpu_before, meter.sample(), len(done))
    for task in pending:
        task.cancel()
    ends = [t.result() for t in done if not t.cancelled() and t.result() is not None]
    in_time = [e for e in ends if e - t0 <= duration + GRACE]
    last = max(ends) if ends else t0 + duration
    achieved = len(ends) / max(last - t0, duration)
    ms = [x * 1000 for x in latencies]
    sustained = (len(ends) >= 0.99 * total and len(in_time) >= 0.99 * total
                 and achieved >= 0.95 * rate)
    return Phase(rate, duration, total, len(ends), len(failures), len(pending),
                 round(percentile(ms, 0.50), 1), round(percentile(ms, 0.95), 1),
                 round(percentile(ms, 0.99), 1), round(max(ms) if ms else float("nan"), 1),
                 round(achieved, 1), sustained, cpu)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, password: str) -> subprocess.Popen:
    env = {**os.environ, "KRAY_BASIC_AUTH": f"bench:{password}"}
    env.pop("RAY_ADDRESS", None)
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kray.cli", "server", "local",
                             "--data-dir", str(data_dir / "data"), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {(data_dir / 'server.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise SystemExit("the server did not start in 180 s")
        time.sleep(0.5)


async def run(url: str, auth: tuple[str, str], rates: list[float], duration: float,
              warmup: int, server_pid: int | None = None) -> list[Phase]:
    meter = CpuMeter(server_pid)
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=120, limits=limits) as c:
        r = await c.put("/api/v1/flows/bench/two", content=FLOW,
                        headers={"Content-Type": "application/x-yaml"})
        if r.status_code == 404:
            r = await c.post("/api/v1/flows", content=FLOW,
                             headers={"Content-Type": "application/x-yaml"})
        r.raise_for_status()
        for i in range(warmup):  # workers, plans and connections warm
            await one(c, i, [], [])
        results = []
        for rate in rates:
            result = await phase(c, rate, duration, meter)
            results.append(result)
            cpu = "  ".join(f"{k} {v}" for k, v in result.cpu_ms_per_execution.items())
            print(f"  {rate:>5.0f}/s  p50 {result.p50_ms:>7.1f} ms  p95 {result.p95_ms:>7.1f} ms"
                  f"  p99 {result.p99_ms:>7.1f} ms  max {result.max_ms:>7.1f} ms  "
                  f"done {result.completed}/{result.sent}  failed {result.failed}  "
                  f"unfinished {result.unfinished}  achieved {result.achieved_per_s:>5.1f}/s  "
                  f"{'sustained' if result.sustained else 'NOT sustained'}"
                  + (f"\n         CPU ms per execution: {cpu}" if cpu else ""),
                  file=sys.stderr, flush=True)
            await asyncio.sleep(2)  # let the backlog of one phase drain before the next
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per rate")
    parser.add_argument("--rates", default="10,25,50,100", help="executions/s, comma-separated")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--url", help="an existing server (default: start kray server local)")
    parser.add_argument("--user", default="bench")
    parser.add_argument("--password", default=None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    password = args.password or "bench-" + os.urandom(8).hex()
    proc = None
    tmp = Path(tempfile.mkdtemp(prefix="kray-api-load-"))
    url = args.url
    if url is None:
        port = free_port()
        proc = start_server(tmp, port, password)
        url = f"http://127.0.0.1:{port}"
    print(f"kray API load: {url}, {args.duration:.0f} s per rate, 2-task flow, wait=true, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    try:
        results = asyncio.run(run(url, (args.user, password), rates, args.duration,
                                  args.warmup, proc.pid if proc is not None else None))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    sustained = [r.rate for r in results if r.sustained]
    best = max(sustained) if sustained else None
    target = next((r for r in results if r.rate == 100), None)
    summary = {"highestSustainedRate": best, "loadAverageAfter": round(os.getloadavg()[0], 1),
               "phases": [asdict(r) for r in results],
               "target": {"rate": 100, "p95Ms": TARGET_P95 * 1000,
                          "met": bool(target and target.sustained
                                      and target.p95_ms <= TARGET_P95 * 1000)}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"highest rate sustained: {best}/s" if best else "no rate sustained")
        if target is not None:
            met = "met" if summary["target"]["met"] else "not met"
            print(f"target 100/s with p95 <= 250 ms: {met} (p95 {target.p95_ms} ms, median "
                  f"of p50s {statistics.median([r.p50_ms for r in results]):.1f} ms)")


if __name__ == "__main__":
    main()
