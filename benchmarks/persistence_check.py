"""What kray's state persistence costs: the same flows with group commits every 20 ms and
with commits deferred 30 s (only the creation's own commit remains).

    python -m benchmarks.persistence_check 0.02     # then 30, alternating, on a quiet machine

One executor per process (its name is fixed), so run the two settings one after another and
alternate them; prints the median wall time of 7 runs after one warm-up, in ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep Ray on 127.0.0.1 (see runners)
sys.path.insert(0, str(Path(__file__).resolve().parent / "runners"))


def main() -> None:
    import ray

    from kray.executor import ExecutorConfig, executor_actor
    from kray_runner import flow_source

    flush = float(sys.argv[1]) if len(sys.argv) > 1 else 0.02
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
             namespace="kray", log_to_driver=False, logging_level="ERROR")
    executor = executor_actor(ExecutorConfig(data_dir=tempfile.mkdtemp(prefix="kray-bench-"),
                                             flush_interval=flush))
    ray.get(executor.ping.remote())
    out = {}
    for workload in ("chain40-light", "foreach100"):
        flow_id, source = flow_source(workload, "kray")
        ray.get(executor.deploy.remote(source))
        walls = []
        for _ in range(8):
            t0 = time.perf_counter()
            created = ray.get(executor.create_execution.remote("bench", flow_id, {}))
            while not ray.get(executor.wait_execution.remote(created["id"], 30.0))["done"]:
                pass
            walls.append(time.perf_counter() - t0)
        out[workload] = round(statistics.median(walls[1:]) * 1000)
    print(f"flush_interval {flush} s: {out} ms (load average {os.getloadavg()[0]:.1f})")
    ray.shutdown()


if __name__ == "__main__":
    main()
