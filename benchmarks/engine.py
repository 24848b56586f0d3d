"""Orchestration overhead of the engine against raw Ray, in one run.

    python -m benchmarks.engine [--runs 5] [--chain 40] [--fanout 200]

Workloads:
* chain: N sequential trivial tasks (Return). kray per task = execution wall time / N.
* fanout: 1 -> W -> 1 trivial tasks (a ForEach with no concurrency limit).

Both run with state persisted (DuckDB group commit) on an embedded Ray on 127.0.0.1, after one
warm-up run; the figure is the median of --runs. Raw Ray runs the same DAG with ObjectRef
dependencies (no driver round trips): the floor any Ray-backed engine stands on.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path


def chain_flow(n: int) -> str:
    tasks = "\n".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{i}\""
        for i in range(n))
    return f"id: bench_chain\nnamespace: bench\ntasks:\n{tasks}\n"


def fanout_flow(width: int) -> str:
    return f"""id: bench_fanout
namespace: bench
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: start
  - id: fan
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(0, {width}) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: leaf
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: end
"""


def run_kray(ray, executor, source: str, ns: str, flow_id: str) -> tuple[float, dict]:
    from kray.runner import follow
    ray.get(executor.deploy.remote(source))
    t0 = time.perf_counter()
    created = ray.get(executor.create_execution.remote(ns, flow_id, {}))
    execution = follow(executor, created["id"])
    wall = time.perf_counter() - t0
    assert execution["state"] == "SUCCESS", execution.get("error")
    return wall, execution


def engine_seconds(execution: dict) -> float:
    start = datetime.fromisoformat(execution["startDate"])
    end = datetime.fromisoformat(execution["endDate"])
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--fanout", type=int, default=200)
    args = parser.parse_args()

    import ray

    from kray.executor import ExecutorConfig, executor_actor

    from kray.runner import loopback_only
    loopback_only()
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
             namespace="kray",
             log_to_driver=False, logging_level="ERROR")
    data = Path(tempfile.mkdtemp(prefix="kray-bench-"))
    executor = executor_actor(ExecutorConfig(data_dir=str(data), flush_interval=float(__import__("os").environ.get("KRAY_FLUSH", "0.02"))))
    ray.get(executor.ping.remote())

    @ray.remote
    def step(prev: str | None, i: int) -> str:
        return str(i)

    @ray.remote
    def join(*parts: str) -> str:
        return "end"

    def raw_chain(n: int) -> float:
        t0 = time.perf_counter()
        ref = None
        for i in range(n):
            ref = step.remote(ref, i)
        ray.get(ref)
        return time.perf_counter() - t0

    def raw_fanout(w: int) -> float:
        t0 = time.perf_counter()
        first = step.remote(None, 0)
        leaves = [step.remote(first, i) for i in range(w)]
        ray.get(join.remote(*leaves))
        return time.perf_counter() - t0

    results = {}
    for name, source, flow_id, raw, size in (
            ("chain", chain_flow(args.chain), "bench_chain", raw_chain, args.chain),
            ("fanout", fanout_flow(args.fanout), "bench_fanout", raw_fanout, args.fanout)):
        run_kray(ray, executor, source, "bench", flow_id)  # warm-up
        raw(size)
        kray_walls, kray_engine, raw_walls, runs = [], [], [], 0
        for _ in range(args.runs):
            wall, execution = run_kray(ray, executor, source, "bench", flow_id)
            kray_walls.append(wall)
            kray_engine.append(engine_seconds(execution))
            runs = len(execution["taskRuns"])
            raw_walls.append(raw(size))
        results[name] = (statistics.median(kray_walls), statistics.median(kray_engine),
                         statistics.median(raw_walls), runs)

    cw, ce, cr, cruns = results["chain"]
    fw, fe, fr, fruns = results["fanout"]
    n, w = args.chain, args.fanout
    print(f"kray engine benchmark ({args.runs} runs, median; state persisted to DuckDB)")
    print(f"chain{n}: kray {cw * 1000:.0f} ms wall ({cw / n * 1000:.2f} ms/task), "
          f"raw Ray {cr * 1000:.0f} ms ({cr / n * 1000:.2f} ms/task); "
          f"orchestration overhead {(cw - cr) / n * 1000:.2f} ms/task; "
          f"ratio kray/raw {cw / cr:.1f}x")
    print(f"fanout 1->{w}->1: kray {fw * 1000:.0f} ms wall, {fruns} task runs, "
          f"{fruns / fw:.0f} task runs/s; raw Ray {fr * 1000:.0f} ms "
          f"({(w + 2) / fr:.0f} tasks/s); ratio kray/raw {fw / fr:.1f}x")
    print(f"(engine-recorded execution durations: chain {ce * 1000:.0f} ms, "
          f"fanout {fe * 1000:.0f} ms)")
    ray.shutdown()


if __name__ == "__main__":
    main()
