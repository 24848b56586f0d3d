"""A wide fan-out on a simulated multi-node cluster, kray against raw Ray, and autoscaling.

    python -m benchmarks.cluster_fanout [--tasks 2000] [--nodes 3] [--cpus 2] [--runs 3]
                                        [--scale-tasks 2000] [--scale-sleep 0.2] [--no-scale]

1. Throughput. ``ray.cluster_utils.Cluster``: a head without CPUs (it holds kray's executor)
   and ``--nodes`` worker nodes of ``--cpus`` CPUs, on 127.0.0.1. The DAG is 1 -> N -> 1
   trivial tasks: kray runs a ForEach of ``Return`` tasks (state persisted, DuckDB group
   commit); raw Ray runs the same DAG with ObjectRef dependencies. Figure: task runs per
   second (N + 2 over the wall time, median of ``--runs`` after a warm-up), and how the tasks
   spread over the nodes.
2. Autoscaling. Ray's fake autoscaler (``tests.cluster.local``): no worker node at first, a
   node type {CPU: 2, fan: 2}, at most ``--nodes``. A ForEach of ``--scale-tasks`` children,
   each asking for ``fan: 1`` and sleeping ``--scale-sleep`` s (the head's one CPU runs the
   first and last tasks). Figures: seconds from the fan-out's start (its first child task
   run) to the first node up, to all nodes up, to all nodes busy (each running a task) and to
   the fan-out's end, with kray's capacity request (``request_resources``) and without it
   (``KRAY_CAPACITY_REQUESTS=0``), each on a fresh cluster.

The fake provider starts its nodes one after the other in the autoscaler's process, so "all
nodes up" measures this machine's node start time as much as the autoscaler's decision; the
autoscaler's own log says how many nodes each launch asked for.
"""

from __future__ import annotations

import os

# Before Ray is imported: nodes on 127.0.0.1, no token auth (see tests/cluster/local.py).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import re
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.cluster.local import (
    MARK,
    fake_autoscaling_config,
    free_ports,
    start_head,
    stop,
)

MiB = 1024 * 1024


def fanout_flow(flow_id: str, width: int, *, resources: str = "", sleep: float = 0) -> str:
    leaf = (f"        type: io.kestra.plugin.core.flow.Sleep\n        duration: PT{sleep}S\n"
            if sleep else "        type: io.kestra.plugin.core.debug.Return\n"
                          "        format: \"{{ taskrun.value }}\"\n")
    extra = f"        resources: {resources}\n" if resources else ""
    return f"""id: {flow_id}
namespace: bench
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: start
  - id: fan
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(1, {width}) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: leaf
{leaf}{extra}  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: end
"""


def run_kray(ray: Any, executor: Any, source: str) -> tuple[float, dict]:
    from kray.runner import follow
    flow = ray.get(executor.deploy.remote(source))
    started = time.perf_counter()
    created = ray.get(executor.create_execution.remote(flow["namespace"], flow["id"], {}))
    execution = follow(executor, created["id"])
    wall = time.perf_counter() - started
    assert execution["state"] == "SUCCESS", execution.get("error")
    return wall, execution


def run_raw(ray: Any, width: int) -> tuple[float, Counter]:
    @ray.remote
    def first() -> str:
        return "start"

    @ray.remote
    def leaf(_: str, i: int) -> str:
        return ray.get_runtime_context().get_node_id()

    @ray.remote
    def last(*nodes: str) -> list[str]:
        return list(nodes)

    started = time.perf_counter()
    head = first.remote()
    nodes = ray.get(last.remote(*[leaf.remote(head, i) for i in range(width)]))
    return time.perf_counter() - started, Counter(nodes)


def throughput(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from kray.executor import ExecutorConfig, executor_actor

    (agent,) = free_ports(1)
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        node_ip_address="127.0.0.1", temp_dir=str(root / "ray"), include_dashboard=False,
        dashboard_agent_listen_port=agent, num_cpus=0, object_store_memory=200 * MiB,
        min_worker_port=0, max_worker_port=0))
    workers = [cluster.add_node(node_ip_address="127.0.0.1", num_cpus=args.cpus,
                                object_store_memory=200 * MiB).node_id
               for _ in range(args.nodes)]
    ray.init(address=cluster.address, namespace="kray", log_to_driver=False,
             logging_level="WARNING")
    try:
        executor = executor_actor(ExecutorConfig(data_dir=str(root / "data")))
        ray.get(executor.ping.remote())
        n = args.tasks
        run_kray(ray, executor, fanout_flow("warm", min(n, 200)))  # workers on every node
        run_raw(ray, min(n, 200))
        kray_walls, raw_walls = [], []
        kray_nodes: Counter = Counter()
        raw_nodes: Counter = Counter()
        for _ in range(args.runs):
            wall, execution = run_kray(ray, executor, fanout_flow("fanout", n))
            kray_walls.append(wall)
            kray_nodes = Counter(a["node"] for tr in execution["taskRuns"]
                                 for a in tr["attempts"] if tr["taskId"] == "leaf")
            wall, raw_nodes = run_raw(ray, n)
            raw_walls.append(wall)
        kray_wall, raw_wall = statistics.median(kray_walls), statistics.median(raw_walls)
        return {"tasks": n + 2, "kray_s": kray_wall, "raw_s": raw_wall,
                "kray_runs_per_s": (n + 2) / kray_wall, "raw_runs_per_s": (n + 2) / raw_wall,
                "kray_spread": [kray_nodes.get(w, 0) for w in workers],
                "raw_spread": [raw_nodes.get(w, 0) for w in workers]}
    finally:
        ray.shutdown()
        cluster.shutdown()


def autoscaling(args: argparse.Namespace, root: Path, capacity_requests: bool) -> dict:
    import ray

    from kray.executor import ExecutorConfig, executor_actor

    types = {"fan_node": {"resources": {"CPU": 2, "fan": 2, "object_store_memory": 100 * MiB},
                          "min_workers": 0, "max_workers": args.nodes}}
    # The head's CPU runs `first` and `last`: only the fan-out needs the worker nodes.
    head = start_head(root / "ray", num_cpus=1, autoscaling=lambda port: fake_autoscaling_config(
        port, 1, types, max_workers=args.nodes, idle_timeout_minutes=1.0),
        env={"KRAY_CAPACITY_REQUESTS": "16" if capacity_requests else "0"})
    try:
        ray.init(address=head.address, namespace="kray", log_to_driver=False,
                 logging_level="WARNING")
        head_id = next(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
        executor = executor_actor(ExecutorConfig(data_dir=str(root / "data")))
        ray.get(executor.ping.remote())
        flow = ray.get(executor.deploy.remote(fanout_flow(
            "scale", args.scale_tasks, resources="{fan: 1}", sleep=args.scale_sleep)))
        started = time.perf_counter()
        created = ray.get(executor.create_execution.remote(flow["namespace"], flow["id"], {}))
        marks: dict[str, float] = {}
        while True:
            now = time.perf_counter() - started
            total = ray._private.state.total_resources_per_node()
            free = ray._private.state.available_resources_per_node()
            nodes = [n for n in total if n != head_id and total[n].get("fan")]
            busy = [n for n in nodes if free.get(n, {}).get("fan", 0) < total[n]["fan"]]
            if nodes:
                marks.setdefault("first_node_up", now)
            if len(nodes) >= args.nodes:
                marks.setdefault("all_nodes_up", now)
            if len(busy) >= args.nodes:
                marks.setdefault("all_nodes_busy", now)
            doc = ray.get(executor.get_execution.remote(created["id"]))
            if "fan_out_start" not in marks and any(tr["taskId"] == "leaf"
                                                    for tr in doc["taskRuns"]):
                marks["fan_out_start"] = now
            if doc["state"] in ("SUCCESS", "FAILED", "KILLED"):
                marks["fan_out_done"] = now
                assert doc["state"] == "SUCCESS", doc.get("error")
                break
            time.sleep(0.1)
        log = next(head.temp_dir.glob("session_*/logs/monitor.log")).read_text()
        launches = [int(x) for x in re.findall(r"Queue (\d+) new nodes for launch", log)]
        start = marks.get("fan_out_start", 0.0)
        since = {k: v - start for k, v in marks.items() if k != "fan_out_start"}
        return {"capacity_requests": capacity_requests, **since, "launches": launches}
    finally:
        ray.shutdown()
        head.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each worker node")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale-tasks", type=int, default=2000)
    parser.add_argument("--scale-sleep", type=float, default=0.2)
    parser.add_argument("--no-scale", action="store_true", help="skip the autoscaling part")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the throughput part")
    args = parser.parse_args()
    token = secrets.token_hex(8)
    os.environ[MARK] = token  # every Ray process started from here carries it: stopped by it
    root = Path(tempfile.mkdtemp(prefix="kb-", dir="/tmp"))
    try:
        if not args.no_throughput:
            t = throughput(args, root / "fixed")
            print(f"fan-out 1 -> {args.tasks} -> 1 on {args.nodes} nodes x {args.cpus} CPUs "
                  f"(median of {args.runs}):")
            print(f"  kray    {t['kray_runs_per_s']:8.0f} task runs/s  ({t['kray_s']:.2f} s)  "
                  f"spread {t['kray_spread']}")
            print(f"  raw Ray {t['raw_runs_per_s']:8.0f} task runs/s  ({t['raw_s']:.2f} s)  "
                  f"spread {t['raw_spread']}")
            print(f"  kray / raw Ray: {t['kray_runs_per_s'] / t['raw_runs_per_s']:.2f}")
        if not args.no_scale:
            for requests in (True, False):
                a = autoscaling(args, root / f"scale-{int(requests)}", requests)
                label = "with capacity request" if requests else "without (Ray's own pace)"
                print(f"autoscaling 0 -> {args.nodes} nodes, {args.scale_tasks} tasks of "
                      f"{args.scale_sleep}s, {label}:")
                print("  from fan-out start: " + "  ".join(f"{k} {a[k]:.1f}s" for k in
                                       ("first_node_up", "all_nodes_up", "all_nodes_busy",
                                        "fan_out_done") if k in a)
                      + f"  launches {a['launches']}")
    finally:
        stop(token)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
