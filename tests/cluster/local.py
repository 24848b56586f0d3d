"""Ray clusters of our own on 127.0.0.1, for the cluster tests and the cluster benchmark.

Other test sessions run Ray on this machine at the same time, so nothing here uses a fixed
port, Ray's default temp dir, a global stop of Ray or a process-name match:

* every port is picked free (``free_ports``), every cluster has its own ``--temp-dir``;
* every process a cluster starts inherits a marker variable (``KRAY_TEST_CLUSTER=<token>``)
  from the environment it was started with, and ``stop`` ends exactly the processes that
  carry this cluster's token (Ray renames many of its processes, ``ray::IDLE`` and the like,
  so their command lines cannot be relied on);
* ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray resolve "this node" to 127.0.0.1 instead
  of the machine's address, for ``ray start --head`` and for the nodes that Ray's fake
  autoscaler and ``ray.cluster_utils.Cluster`` start in-process;
* ``RAY_AUTH_MODE=disabled``: token authentication off for heads and clients alike, whether
  or not ``~/.ray/auth_token`` exists on the machine.

``start_head(..., autoscaling=fake_autoscaling_config(...))`` is what Ray's own
``AutoscalingCluster.start()`` does (a head whose autoscaler uses the fake multi-node
provider, which starts worker nodes as local processes), except that it never stops every Ray process on the machine first.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
MARK = "KRAY_TEST_CLUSTER"
RESULT_PREFIX = "KRAY-RESULT "


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held open together while chosen)."""
    with ExitStack() as stack:
        socks = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]


def cluster_env(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for everything a test cluster runs: Ray's processes and drivers."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    path = env.get("PYTHONPATH")
    env.update({
        MARK: token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
    })
    env.update(extra or {})
    return env


def marked(token: str) -> list[psutil.Process]:
    """The live processes that carry ``token`` in their environment."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARK) == token:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def stop(token: str, grace: float = 5.0) -> int:
    """End every process of the cluster ``token``: SIGTERM, then SIGKILL after ``grace``
    seconds. Returns how many were ended."""
    ended = 0
    for _ in range(5):  # a dying raylet may still start a worker or two
        procs = marked(token)
        if not procs:
            break
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace)
        ended += len(procs)
    return ended


@dataclass
class Head:
    """A ``ray start --head`` cluster of our own."""

    temp_dir: Path
    token: str
    port: int
    dashboard_port: int
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def stop(self) -> int:
        return stop(self.token)


def fake_autoscaling_config(gcs_port: int, head_cpus: float, worker_types: dict[str, Any], *,
                            max_workers: int, idle_timeout_minutes: float = 0.1,
                            upscaling_speed: float = 1.0) -> dict[str, Any]:
    """An autoscaling config for Ray's fake multi-node provider (worker nodes are local
    processes). ``worker_types``: node type name -> {resources, min_workers, max_workers}."""
    types = {name: {"node_config": {}, **spec} for name, spec in worker_types.items()}
    types["ray.head.default"] = {"resources": {"CPU": head_cpus}, "node_config": {},
                                 "max_workers": 0}
    return {
        "cluster_name": "kray-fake",
        "max_workers": max_workers,
        # launch_multiple: start every node of a launch, not one per launch.
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "launch_multiple": True, "gcs_address": f"127.0.0.1:{gcs_port}"},
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": upscaling_speed,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [], "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
    }


def start_head(temp_dir: Path, *, num_cpus: float = 1, resources: dict[str, float] | None = None,
               dashboard: bool = False, autoscaling: Any = None,
               env: dict[str, str] | None = None, object_store_mb: int = 100,
               timeout: float = 180) -> Head:
    """``ray start --head`` on 127.0.0.1 with free ports and ``temp_dir`` as its temp dir.

    ``autoscaling``: a callable ``gcs_port -> config`` (see ``fake_autoscaling_config``);
    the head then runs Ray's autoscaler with the fake multi-node provider."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    (port, dash, agent_http, agent_grpc, client, env_agent, metrics, monitor) = free_ports(8)
    extra = dict(env or {})
    cmd = ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
           f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
           f"--include-dashboard={'true' if dashboard else 'false'}",
           f"--dashboard-agent-listen-port={agent_http}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--ray-client-server-port={client}",
           f"--runtime-env-agent-port={env_agent}", f"--metrics-export-port={metrics}",
           "--min-worker-port=0", "--max-worker-port=0", f"--num-cpus={num_cpus:g}",
           f"--object-store-memory={object_store_mb * 1024 * 1024}", "--disable-usage-stats"]
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    if autoscaling is not None:
        config = temp_dir / "autoscaling.json"
        config.write_text(json.dumps(autoscaling(port)))
        cmd.append(f"--autoscaling-config={config}")
        extra.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                      "AUTOSCALER_METRIC_PORT": str(monitor)})
    full_env = cluster_env(token, extra)
    head = Head(temp_dir, token, port, dash, full_env)
    try:
        proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True,
                              timeout=timeout, cwd=temp_dir, check=False)
    except subprocess.TimeoutExpired as e:
        head.stop()
        raise RuntimeError(f"ray start --head timed out after {timeout}s") from e
    if proc.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start --head failed:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    if dashboard:
        _wait_http(f"{head.dashboard_url}/api/version", timeout)
    return head


def _wait_http(url: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.5)


def run_scenario(name: str, args: dict[str, Any], *, token: str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 240,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run ``tests.cluster.scenarios.<name>(**args)`` in a child Python process (which may
    start and join Ray clusters without touching this process's Ray) and return its result.

    The child gets the marker ``token`` (a fresh one by default): whatever Ray processes it
    starts, even those it would leave behind, are ended by token when it is done."""
    token = token or secrets.token_hex(8)
    full_env = cluster_env(token, env)
    cmd = [sys.executable, "-m", "tests.cluster.scenarios", name, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd or ROOT, check=False)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-4000:] if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise AssertionError(f"scenario {name} timed out after {timeout}s:\n{out}") from e
    finally:
        stop(token)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise AssertionError(f"scenario {name} gave no result (exit {proc.returncode}):\n"
                         f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")


__all__ = [
    "ROOT",
    "Head",
    "cluster_env",
    "fake_autoscaling_config",
    "free_ports",
    "marked",
    "run_scenario",
    "start_head",
    "stop",
]
