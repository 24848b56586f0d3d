"""kray on a Ray cluster: what the executor must know about the cluster beyond running tasks.

Three concerns, each called from the executor (``kray.executor``) through ``ClusterHooks``:

* **Feasibility.** Ray queues a task whose resources no node offers and waits for one that
  does: forever, when no node of the cluster, alive or that the autoscaler could add, ever
  will. Before a task is submitted its demand (``num_cpus`` default 1, ``num_gpus``,
  ``memory``, custom resources) is compared with the nodes alive now and with the
  autoscaler's node types; a task that none can ever hold fails at once, with an error naming
  what it asked for and what the cluster offers.
* **Capacity.** The autoscaler grows a cluster from the demand it sees queued, a few nodes per
  round (``upscaling_speed``). When a large fan-out starts, kray asks it for the fan-out's
  whole capacity (``ray.autoscaler.sdk.request_resources``) so the cluster scales in one step,
  and withdraws the request when the fan-out has drained, so that idle nodes can go.
* **Dashboard links.** Each attempt's Ray task id is recorded on its task run
  (``meta.rayTasks``); ``dashboard_links`` turns an execution into links to the Ray
  dashboard's task and node pages.

Where the autoscaler's node types come from, first that applies (``KRAY_NODE_TYPES`` is read
in the executor's process, i.e. the head node's environment):

1. ``KRAY_NODE_TYPES``: ``fixed`` (the cluster never grows: only the nodes alive count),
   ``off`` (no check, no capacity requests), inline JSON ``{"gpu": {"CPU": 8, "GPU": 1}}``, or
   the path of a cluster launcher YAML or autoscaling config (its ``available_node_types``).
2. The autoscaler (Ray's ``monitor.py``) running on the head node for this cluster's GCS: its
   ``--autoscaling-config`` file (``ray up`` clusters, ``ray start --head
   --autoscaling-config``). A monitor started without one means a fixed-size cluster.
3. Otherwise (KubeRay, whose autoscaler runs in a container of its own) the node types are
   unknown: nothing is failed, since the autoscaler might add a node that fits. Set
   ``KRAY_NODE_TYPES`` there.

A node type that does not list ``CPU``, ``GPU`` or ``memory`` is taken to have enough of it
(cloud providers fill those in from the instance type); custom resources must be listed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("kray.cluster")

NODE_TYPES_ENV = "KRAY_NODE_TYPES"
CAPACITY_ENV = "KRAY_CAPACITY_REQUESTS"  # fan-out size that triggers a request; 0: never
DASHBOARD_ENV = "KRAY_DASHBOARD_URL"  # the dashboard as users reach it (ingress, proxy)
DEFAULT_MIN_FANOUT = 16
NODES_TTL = 2.0  # seconds a snapshot of the alive nodes is trusted
FEASIBLE_TTL = 30.0  # seconds a "this shape fits" verdict is trusted
_INFERRED = ("CPU", "GPU", "memory")  # node types may leave these to the provider
_IGNORED = ("object_store_memory",)  # never asked for by a task

Shape = dict[str, float]


# ---------------------------------------------------------------------- demand and shapes
def demand_of(options: Mapping[str, Any]) -> Shape:
    """What a task with these Ray options needs of one node (Ray's default: one CPU)."""
    need: Shape = {"CPU": float(options.get("num_cpus", 1))}
    if options.get("num_gpus"):
        need["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        need["memory"] = float(options["memory"])
    for name, amount in (options.get("resources") or {}).items():
        need[str(name)] = float(amount)
    return {k: v for k, v in need.items() if v > 0}


def fits(need: Mapping[str, float], offer: Mapping[str, float], *,
         inferred: Iterable[str] = ()) -> bool:
    """Whether one node offering ``offer`` can hold ``need``. Names in ``inferred`` that the
    offer leaves out count as enough (node types whose CPUs come from the instance type)."""
    lenient = set(inferred)
    for name, amount in need.items():
        if name not in offer:
            if name in lenient:
                continue
            return False
        if float(offer[name]) + 1e-9 < amount:
            return False
    return True


@dataclass(frozen=True)
class NodeTypes:
    """The node types an autoscaler may add. ``types is None``: not known; ``fixed``: the
    cluster never grows."""

    types: dict[str, Shape] | None = None
    fixed: bool = False
    source: str = "unknown"
    enabled: bool = True  # False: KRAY_NODE_TYPES=off

    @property
    def may_grow(self) -> bool:
        return self.enabled and not self.fixed


def node_types_from_config(config: Mapping[str, Any]) -> dict[str, Shape]:
    """``available_node_types`` of a cluster launcher YAML / autoscaling config, the node
    types that can be launched (``max_workers`` above zero, or no limit given)."""
    out: dict[str, Shape] = {}
    head = config.get("head_node_type")
    for name, spec in (config.get("available_node_types") or {}).items():
        spec = spec or {}
        if name == head or spec.get("max_workers", 1) == 0:
            continue
        resources = spec.get("resources") or {}
        out[str(name)] = {str(k): float(v) for k, v in resources.items() if k not in _IGNORED}
    return out


def parse_node_types(value: str) -> NodeTypes:
    """``KRAY_NODE_TYPES``: ``fixed``, ``off``, inline JSON of node types, or a file path."""
    text = value.strip()
    if text.lower() in ("fixed", "none"):
        return NodeTypes(fixed=True, source=f"{NODE_TYPES_ENV}=fixed")
    if text.lower() in ("off", "0", "false"):
        return NodeTypes(enabled=False, source=f"{NODE_TYPES_ENV}=off")
    if text.startswith("{"):
        data = json.loads(text)
        if "available_node_types" in data:
            return NodeTypes(node_types_from_config(data), source=NODE_TYPES_ENV)
        types = {str(k): {str(r): float(a) for r, a in (v or {}).items()}
                 for k, v in data.items()}
        return NodeTypes(types, source=NODE_TYPES_ENV)
    return NodeTypes(node_types_from_config(_load_config(Path(text))), source=text)


def _load_config(path: Path) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def discover_node_types(gcs_address: str | None) -> NodeTypes:
    """From ``KRAY_NODE_TYPES``, else from the autoscaler running next to this process."""
    env = os.environ.get(NODE_TYPES_ENV)
    if env:
        return parse_node_types(env)
    if not gcs_address:
        return NodeTypes()
    monitor = _find_monitor(gcs_address)
    if monitor is None:
        return NodeTypes()
    config = _flag(monitor, "--autoscaling-config")
    if not config:
        return NodeTypes(fixed=True, source="the autoscaler runs without node types")
    try:
        return NodeTypes(node_types_from_config(_load_config(Path(config))), source=config)
    except (OSError, ValueError) as e:
        log.warning("cannot read the autoscaling config %s: %s", config, e)
        return NodeTypes()


def _find_monitor(gcs_address: str) -> list[str] | None:
    """The command line of Ray's autoscaler process for ``gcs_address`` on this machine."""
    import psutil

    port = gcs_address.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if not any(part.endswith("autoscaler/_private/monitor.py") for part in cmd):
            continue
        address = _flag(cmd, "--gcs-address") or ""
        if address == gcs_address or address.rsplit(":", 1)[-1] == port:
            return cmd
    return None


def _flag(cmd: list[str], name: str) -> str | None:
    for i, part in enumerate(cmd):
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
        if part == name and i + 1 < len(cmd):
            return cmd[i + 1]
    return None


def infeasible_reason(need: Shape, nodes: Mapping[str, Shape], types: NodeTypes) -> str | None:
    """None when some node (alive, or a type the autoscaler can add) can hold ``need`` or when
    that cannot be known; otherwise the error the task fails with."""
    if not types.enabled:
        return None
    if any(fits(need, offer) for offer in nodes.values()):
        return None
    if types.types is None and not types.fixed:
        return None  # an autoscaler we cannot see might add a node that fits
    known = types.types or {}
    if any(fits(need, offer, inferred=_INFERRED) for offer in known.values()):
        return None
    offers = [*nodes.values(), *known.values()]
    short = []
    for name, amount in sorted(need.items()):
        most = max((o.get(name, 0.0) for o in offers), default=0.0)
        if most + 1e-9 < amount:
            short.append(f"no node has {name}" if most == 0 else
                         f"{name}: at most {_amount(name, most)} on one node")
    text = (f"no node of this Ray cluster can ever run this task: it asks for {_fmt(need)}, "
            + ("; ".join(short) if short else "and no single node has all of it")
            + f" ({len(nodes)} node{'' if len(nodes) == 1 else 's'} alive")
    if known:
        text += "; the autoscaler can add " + ", ".join(
            f"{name} {_fmt(offer)}" for name, offer in known.items())
    elif types.fixed:
        text += "; the cluster does not autoscale"
    return text + "). Change the task's resources, or give the cluster a node type that has them."


def _fmt(shape: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}={_amount(k, v)}" for k, v in sorted(shape.items())) + "}"


def _amount(name: str, amount: float) -> str:
    if name != "memory":
        return f"{amount:g}"
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if amount >= size:
            return f"{amount / size:.3g}{unit}"
    return f"{amount:g}B"


def alive_nodes() -> dict[str, Shape]:
    """Total resources of each alive node (Ray node id -> resources), without Ray's per-node
    ``node:<ip>`` markers."""
    import ray

    out: dict[str, Shape] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            out[node["NodeID"]] = {k: float(v) for k, v in node.get("Resources", {}).items()
                                   if not k.startswith("node:") and k not in _IGNORED}
    return out


# ---------------------------------------------------------------------- capacity requests
class CapacityPlanner:
    """Asks the autoscaler for a fan-out's capacity in one step, and withdraws it after.

    ``request_resources`` is one cluster-wide request that each call replaces, and it also
    keeps nodes from scaling down, so the executor keeps exactly one: the bundles of the
    fan-outs in progress. An execution becomes a fan-out when ``min_fanout`` of its tasks are
    in flight at once; its share grows with its peak and is withdrawn when its last in-flight
    task settles. When no fan-out is left the request is cleared, and idle nodes are removed
    after the autoscaler's idle timeout. kray owns the cluster's request: another caller of
    ``request_resources`` on the same cluster is overwritten.
    """

    def __init__(self, request: Callable[[list[Shape]], None], min_fanout: int):
        self.request = request
        self.min_fanout = min_fanout
        self.inflight: dict[Hashable, tuple[str, tuple]] = {}
        self.by_execution: dict[str, Counter[tuple]] = {}
        self.active: dict[str, Counter[tuple]] = {}  # fan-outs: their peak in-flight bundles
        # None until the first update, which always writes: a request left behind by an
        # executor that died mid fan-out is cleared by the next one.
        self.requested: list[Shape] | None = None

    def submitted(self, key: Hashable, execution_id: str, need: Shape) -> None:
        shape = tuple(sorted(need.items()))
        self.inflight[key] = (execution_id, shape)
        self.by_execution.setdefault(execution_id, Counter())[shape] += 1

    def settled(self, key: Hashable) -> None:
        found = self.inflight.pop(key, None)
        if found is None:
            return
        execution_id, shape = found
        counts = self.by_execution[execution_id]
        counts[shape] -= 1
        if counts[shape] <= 0:
            del counts[shape]
        if not counts:
            del self.by_execution[execution_id]

    def update(self) -> bool:
        """Bring the autoscaler's request up to date; True when it changed."""
        changed = False
        for execution_id in list(self.active):
            if execution_id not in self.by_execution:
                del self.active[execution_id]
                changed = True
        for execution_id, counts in self.by_execution.items():
            total = sum(counts.values())
            peak = self.active.get(execution_id)
            if total >= self.min_fanout and (peak is None or total > sum(peak.values())):
                self.active[execution_id] = Counter(counts)
                changed = True
        if not changed and self.requested is not None:
            return False
        bundles = [dict(shape) for peak in self.active.values()
                   for shape, n in peak.items() for _ in range(n)]
        if bundles == self.requested:
            return False
        self.request(bundles)
        self.requested = bundles
        return True


def request_resources(bundles: list[Shape]) -> None:
    """The autoscaler request: these bundles (``[]`` clears it)."""
    from ray.autoscaler.sdk import request_resources as ray_request

    ray_request(bundles=[{k: v for k, v in b.items()} for b in bundles])


# ---------------------------------------------------------------------- storage
def storage_from_env(storage_url: str | None, storage_options: dict[str, Any],
                     env: Mapping[str, str] | None = None) -> tuple[str | None, dict[str, Any]]:
    """An executor created without a storage URL (``kray run``, e.g. as a Ray job's
    entrypoint) takes ``KRAY_STORAGE_URL`` / ``KRAY_STORAGE_OPTIONS`` (JSON) from its own
    environment: the head node's, where a cluster's deployment sets them, so that every node
    reads and writes the same bucket. An explicit URL is kept."""
    env = os.environ if env is None else env
    if storage_url or not env.get("KRAY_STORAGE_URL"):
        return storage_url, storage_options
    options = storage_options
    if env.get("KRAY_STORAGE_OPTIONS"):
        options = json.loads(env["KRAY_STORAGE_OPTIONS"])
        if not isinstance(options, dict):
            raise ValueError("KRAY_STORAGE_OPTIONS must be a JSON object")
    return env["KRAY_STORAGE_URL"], options


# ---------------------------------------------------------------------- dashboard links
def dashboard_url() -> str | None:
    """The Ray dashboard's base URL: ``KRAY_DASHBOARD_URL``, else as Ray reports it."""
    url = os.environ.get(DASHBOARD_ENV)
    if not url:
        try:
            from ray._private import worker
            url = worker.get_dashboard_url()
        except Exception:
            return None
    if not url:
        return None
    return url.rstrip("/") if "://" in url else f"http://{url.rstrip('/')}"


def job_of(task_id: str) -> str:
    """A Ray task id's job id (a task id ends with its actor id, which ends with the job)."""
    return task_id[-8:]


def dashboard_links(execution: Mapping[str, Any], base_url: str) -> list[dict[str, Any]]:
    """One entry per attempt of each runnable task run: its Ray task id and links to the
    task's page and the page of the node it ran on (``Execution.to_dict()`` shape)."""
    base = base_url.rstrip("/")
    out = []
    for run in execution.get("taskRuns", []):
        ray_tasks = (run.get("meta") or {}).get("rayTasks") or []
        for i, attempt in enumerate(run.get("attempts") or []):
            task = ray_tasks[i] if i < len(ray_tasks) else None
            node = attempt.get("node")
            out.append({
                "taskRunId": run["id"], "taskId": run["taskId"], "attempt": i + 1,
                "state": attempt.get("state"), "rayTaskId": task, "nodeId": node,
                "task": f"{base}/#/jobs/{job_of(task)}/tasks/{task}" if task else None,
                "node": f"{base}/#/cluster/nodes/{node}" if node and len(node) == 56 else None,
            })
    return out


# ---------------------------------------------------------------------- the executor's hooks
@dataclass
class ClusterHooks:
    """What the executor calls around each submission. Everything it does is best effort:
    a failure to reach the GCS or the autoscaler never fails a task, only the checks below."""

    node_types: NodeTypes | None = None
    min_fanout: int = field(default_factory=lambda: _min_fanout())
    nodes: dict[str, Shape] = field(default_factory=dict)
    nodes_at: float = -1e9
    verdicts: dict[int, tuple[float, dict, str | None]] = field(default_factory=dict)
    planner: CapacityPlanner | None = None
    pending_update: bool = False

    def types(self) -> NodeTypes:
        if self.node_types is None:
            try:
                import ray
                gcs = ray.get_runtime_context().gcs_address
            except Exception:
                gcs = None
            try:
                self.node_types = discover_node_types(gcs)
            except (OSError, ValueError) as e:  # a bad KRAY_NODE_TYPES: say so, check less
                log.error("%s: %s; node types unknown", NODE_TYPES_ENV, e)
                self.node_types = NodeTypes(source=f"{NODE_TYPES_ENV} unreadable")
            log.info("node types: %s (%s)", self.node_types.types, self.node_types.source)
        return self.node_types

    def check(self, options: dict) -> str | None:
        """None when a task with these Ray options can be submitted, else why it never can
        run. ``options`` are the executor's cached per-task dicts, so their id is a key."""
        now = time.monotonic()
        cached = self.verdicts.get(id(options))
        if cached is not None and cached[1] is options and (
                cached[2] is None and now - cached[0] < FEASIBLE_TTL):
            return None
        types = self.types()
        if not types.enabled:
            return None
        need = demand_of(options)
        reason = infeasible_reason(need, self._nodes(now, fresh=False), types)
        if reason is not None:  # a node may have joined since the snapshot: look again
            reason = infeasible_reason(need, self._nodes(now, fresh=True), types)
        self.verdicts[id(options)] = (now, options, reason)
        return reason

    def _nodes(self, now: float, fresh: bool) -> dict[str, Shape]:
        if fresh or now - self.nodes_at > NODES_TTL:
            try:
                self.nodes, self.nodes_at = alive_nodes(), now
            except Exception as e:  # GCS unreachable: judge with what we had
                log.warning("cannot list the cluster's nodes: %s", e)
        return self.nodes

    def submitted(self, run: Any, attempt: int, ref: Any, key: Hashable, execution_id: str,
                  options: dict | None) -> None:
        """Record the attempt's Ray task id; count it towards a fan-out's capacity."""
        try:
            ids = run.meta.setdefault("rayTasks", [])
            ids.extend([None] * (attempt - len(ids)))
            ids[attempt - 1] = ref.task_id().hex()
        except Exception as e:  # never fails a submission: the link is only a convenience
            log.debug("no Ray task id for %s attempt %s: %s", key, attempt, e)
        if options is None or self.min_fanout <= 0 or not self.types().may_grow:
            return
        if self.planner is None:
            self.planner = CapacityPlanner(request_resources, self.min_fanout)
        self.planner.submitted(key, execution_id, demand_of(options))
        self._schedule_update()

    def settled(self, key: Hashable) -> None:
        if self.planner is not None and key in self.planner.inflight:
            self.planner.settled(key)
            self._schedule_update()

    def _schedule_update(self) -> None:
        """Once per event-loop turn: a fan-out's submissions arrive together."""
        if self.pending_update:
            return
        self.pending_update = True
        import asyncio
        asyncio.get_running_loop().call_soon(self._update)

    def _update(self) -> None:
        self.pending_update = False
        if self.planner is None:
            return
        try:
            if self.planner.update():
                log.info("capacity request: %d bundles", len(self.planner.requested or []))
        except Exception as e:
            log.warning("capacity request failed: %s", e)

    def info(self) -> dict[str, Any]:
        types = self.types()
        return {"dashboardUrl": dashboard_url(), "nodeTypes": types.types,
                "nodeTypesSource": types.source, "fixed": types.fixed,
                "checks": types.enabled, "minFanout": self.min_fanout,
                "capacityRequest": list(self.planner.requested or []) if self.planner else []}


def _min_fanout() -> int:
    value = os.environ.get(CAPACITY_ENV, "").strip().lower()
    if not value:
        return DEFAULT_MIN_FANOUT
    if value in ("off", "false", "no"):
        return 0
    try:
        return int(value)
    except ValueError:
        log.error("%s=%r is not a number; using %d", CAPACITY_ENV, value, DEFAULT_MIN_FANOUT)
        return DEFAULT_MIN_FANOUT


__all__ = [
    "CapacityPlanner",
    "ClusterHooks",
    "NodeTypes",
    "dashboard_links",
    "dashboard_url",
    "demand_of",
    "discover_node_types",
    "fits",
    "infeasible_reason",
    "node_types_from_config",
    "parse_node_types",
    "storage_from_env",
]
