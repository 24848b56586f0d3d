"""Cluster scenarios, each run in a child process of its own (``local.run_scenario``).

The test session's Ray (``tests/conftest.py``) lives in the pytest process; a process holds
one Ray connection, so everything that starts or joins another cluster runs here instead and
reports what it saw as one JSON line. The tests assert on that report.

    python -m tests.cluster.scenarios NAME '{"arg": ...}'
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.cluster.local import RESULT_PREFIX, free_ports

MiB = 1024 * 1024


# ---------------------------------------------------------------------- helpers
def connect(address: str) -> Any:
    import ray
    ray.init(address=address, namespace="kray", log_to_driver=False, logging_level="WARNING")
    return ray


def start_executor(ray: Any, data_dir: str, **config: Any) -> Any:
    from kray.executor import ExecutorConfig, executor_actor
    actor = executor_actor(ExecutorConfig(data_dir=data_dir, **config))
    ray.get(actor.ping.remote())
    return actor


def start(ray: Any, executor: Any, source: str) -> str:
    flow = ray.get(executor.deploy.remote(source))
    created = ray.get(executor.create_execution.remote(flow["namespace"], flow["id"], {}))
    return str(created["id"])


def run(ray: Any, executor: Any, source: str) -> dict:
    from kray.runner import follow
    started = time.monotonic()
    execution = follow(executor, start(ray, executor, source))
    return summary(execution, time.monotonic() - started)


def summary(execution: dict, seconds: float | None = None) -> dict:
    """The facts the tests look at, by task id (the last run of each)."""
    runs = {}
    for tr in execution["taskRuns"]:
        runs[tr["taskId"]] = {
            "state": tr["state"], "outputs": tr["outputs"], "error": tr.get("error"),
            "attempts": [a["state"] for a in tr["attempts"]],
            "nodes": [a.get("node") for a in tr["attempts"]],
            "errors": [a.get("error") for a in tr["attempts"]],
            "lost": (tr.get("meta") or {}).get("lost", 0),
            "rayTasks": (tr.get("meta") or {}).get("rayTasks"),
        }
    return {"id": execution["id"], "state": execution["state"], "error": execution.get("error"),
            "outputs": execution.get("outputs") or {}, "runs": runs, "seconds": seconds}


def head_args(temp_dir: str, **extra: Any) -> dict[str, Any]:
    """``ray.cluster_utils.Cluster`` head on 127.0.0.1, its own temp dir and free ports."""
    (agent,) = free_ports(1)
    args: dict[str, Any] = {
        "node_ip_address": "127.0.0.1", "temp_dir": temp_dir, "include_dashboard": False,
        "dashboard_agent_listen_port": agent, "num_cpus": 0,
        "object_store_memory": 80 * MiB, "min_worker_port": 0, "max_worker_port": 0}
    args.update(extra)
    return args


def add_node(cluster: Any, **resources: float) -> Any:
    return cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1,
                            object_store_memory=80 * MiB, resources=resources)


# ---------------------------------------------------------------------- multi-node
PLACEMENT = """id: placement
namespace: cluster
pluginDefaults:
  - type: io.kestra.plugin.core.debug.Return
    values:
      resources: {zone_b: 1}
tasks:
  - id: on_a
    type: io.kestra.plugin.core.log.Log
    message: on zone a
    resources: {zone_a: 1, cpu: 1, memory: 32Mi}
  - id: by_default
    type: io.kestra.plugin.core.debug.Return
    format: from the flow's pluginDefaults
  - id: env
    type: io.kestra.plugin.scripts.shell.Commands
    resources: {zone_c: 1}
    runtimeEnv:
      env_vars: {KRAY_MARK: from-runtime-env}
    commands:
      - echo '::{"outputs":{"mark":"'"$KRAY_MARK"'"}}::'
"""

DATA = """id: data
namespace: cluster
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    resources: {zone_a: 1}
    outputFiles: [numbers.csv]
    commands:
      - printf 'n\\n1\\n2\\n3\\n4\\n' > numbers.csv
  - id: total
    type: io.kestra.plugin.jdbc.duckdb.Query
    resources: {zone_b: 1}
    inputFiles:
      numbers.csv: "{{ outputs.write.outputFiles['numbers.csv'] }}"
    sql: SELECT sum(n) AS total FROM read_csv_auto('numbers.csv')
    fetchType: STORE
    storeFormat: JSONL
  - id: note
    type: io.kestra.plugin.core.storage.Write
    resources: {zone_a: 1}
    content: "written on zone a"
    extension: .txt
  - id: check
    type: io.kestra.plugin.core.debug.Return
    resources: {zone_c: 1}
    format: "{{ read(outputs.total.uri) | trim }} / {{ read(outputs.note.uri) }}"
"""

IMPOSSIBLE = """id: impossible
namespace: cluster
tasks:
  - id: all
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: gpu
        type: io.kestra.plugin.core.log.Log
        message: never
        resources: {gpu: 1}
      - id: zone_z
        type: io.kestra.plugin.core.log.Log
        message: never
        resources: {zone_z: 1}
      - id: huge
        type: io.kestra.plugin.core.log.Log
        message: never
        resources: {memory: 100Ti}
"""

LOSS = """id: loss
namespace: cluster
tasks:
  - id: survive
    type: io.kestra.plugin.scripts.shell.Commands
    resources: {lossy: 1}
    commands:
      - if [ -e MARKER ]; then echo second; else touch MARKER; sleep 300; fi
"""


def multinode(temp_dir: str, data_dir: str, storage_url: str,
              storage_options: dict[str, Any]) -> dict[str, Any]:
    """Head (no CPU) and three one-CPU nodes, each with a custom resource ``zone_<x>``;
    internal storage on S3. Then: placement, data across nodes, infeasible tasks, and a
    node lost mid-task."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=head_args(temp_dir))
    nodes = {zone: add_node(cluster, **{f"zone_{zone}": 1}).node_id for zone in "abc"}
    ray = connect(cluster.address)
    executor = start_executor(ray, data_dir, storage_url=storage_url,
                              storage_options=storage_options)
    out: dict[str, Any] = {"nodes": nodes, "head": cluster.head_node.node_id}
    out["placement"] = run(ray, executor, PLACEMENT)
    out["data"] = run(ray, executor, DATA)
    out["impossible"] = run(ray, executor, IMPOSSIBLE)
    out["loss"] = node_loss(ray, executor, cluster, Path(temp_dir) / "loss-started")
    execution = ray.get(executor.get_execution.remote(out["placement"]["id"]))
    from kray.cluster import dashboard_links
    out["links"] = dashboard_links(execution, "http://dashboard.example:8265")
    out["job"] = ray.get_runtime_context().get_job_id()
    ray.shutdown()
    cluster.shutdown()
    return out


def node_loss(ray: Any, executor: Any, cluster: Any, marker: Path) -> dict[str, Any]:
    """The task starts on the only node with ``lossy``; a second one joins; the first is
    removed mid-task: the attempt is lost, and the task runs again on the second."""
    from kray.runner import follow

    first = add_node(cluster, lossy=1)
    execution_id = start(ray, executor, LOSS.replace("MARKER", str(marker)))
    deadline = time.monotonic() + 120
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the task never started")
        time.sleep(0.1)
    second = add_node(cluster, lossy=1)
    removed_at = time.monotonic()
    cluster.remove_node(first)
    execution = follow(executor, execution_id)
    return {**summary(execution, time.monotonic() - removed_at),
            "first": first.node_id, "second": second.node_id}


# ---------------------------------------------------------------------- autoscaling
FANOUT = """id: fanout
namespace: cluster
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(0, WIDTH) | list }}"
    concurrencyLimit: 0
    tasks:
      - id: work
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT3S
        resources: {fan: 1}
"""

TOO_BIG = """id: too_big
namespace: cluster
tasks:
  - id: three
    type: io.kestra.plugin.core.log.Log
    message: never
    resources: {fan: 3}
"""


class Watch:
    """Samples, every ``every`` seconds, the cluster's alive worker nodes and the request the
    autoscaler holds (``request_resources``), from a thread of the driver."""

    def __init__(self, ray: Any, head: str, every: float = 0.25):
        self.ray, self.head, self.every = ray, head, every
        self.samples: list[dict[str, Any]] = []
        self.requested: list[dict[str, float]] = []  # the first request seen
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from ray.experimental.internal_kv import _internal_kv_get

        while not self.stop.is_set():
            try:
                alive = [n for n in self.ray.nodes() if n.get("Alive")]
                raw = _internal_kv_get(b"autoscaler_resource_request")
                request = json.loads(raw) if raw else None
                busy = [n["NodeID"] for n in alive if n["NodeID"] != self.head]
                if request and not self.requested:
                    self.requested = request
                self.samples.append({"t": round(time.monotonic() - self.started, 2),
                                     "workers": len(busy),
                                     "request": len(request) if request is not None else None})
            except Exception as e:  # keep sampling through GCS hiccups
                self.samples.append({"t": round(time.monotonic() - self.started, 2),
                                     "error": str(e)})
            self.stop.wait(self.every)

    def close(self) -> list[dict[str, Any]]:
        self.stop.set()
        self.thread.join()
        return self.samples


def autoscale(address: str, data_dir: str, width: int, scale_down_timeout: float) -> dict:
    """On a fake autoscaling head (no worker nodes yet): a ForEach whose children need
    ``fan``; then a task that no node type can hold; then wait for the scale-down."""
    ray = connect(address)
    head = next(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    executor = start_executor(ray, data_dir)
    info = ray.get(executor.cluster_info.remote())
    too_big = run(ray, executor, TOO_BIG)
    watch = Watch(ray, head)
    fanout = run(ray, executor, FANOUT.replace("WIDTH", str(width - 1)))  # range() is inclusive
    ended = time.monotonic() - watch.started
    deadline = time.monotonic() + scale_down_timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        last = watch.samples[-1] if watch.samples else {}
        if last.get("workers") == 0:
            break
    samples = watch.close()
    nodes = sorted({n["NodeID"] for n in ray.nodes()} - {head})
    return {"info": info, "tooBig": too_big, "fanout": fanout, "ended": ended,
            "samples": samples, "requested": watch.requested, "workerNodesEver": len(nodes)}


# ---------------------------------------------------------------------- jobs
def probe(address: str, execution_ids: list[str]) -> dict[str, Any]:
    """What the cluster's executor knows of these executions, and who it is."""
    ray = connect(address)
    from kray.executor import EXECUTOR_NAME, NAMESPACE
    executor = ray.get_actor(EXECUTOR_NAME, namespace=NAMESPACE)
    states = {i: ray.get(executor.get_execution.remote(i))["state"] for i in execution_ids}
    return {"states": states, "ping": ray.get(executor.ping.remote())}


SCENARIOS = {"multinode": multinode, "autoscale": autoscale, "probe": probe}


def main(argv: list[str]) -> None:
    name, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = SCENARIOS[name](**args)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
