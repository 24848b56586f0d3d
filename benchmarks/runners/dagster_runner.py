"""Dagster, in its own venv: ``dagster-inprocess`` (``execute_in_process``) and
``dagster-multiprocess`` (``execute_job`` with the multiprocess executor, one process per
step; ``max_concurrent: 1`` for the one-at-a-time loop), both on a persistent SQLite instance
(``DagsterInstance.local_temp``), like kray's persisted state.

Task times are the STEP_START / STEP_SUCCESS events in the instance's event log; wall time is
the call in this process.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The multiprocess executor's step processes import dagster_jobs too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH"))
                                           if p)

import common  # noqa: E402
from common import CHAIN_HEAVY, CHAIN_LIGHT, FANOUT, FOREACH  # noqa: E402

EXPECTED = {"chain40-light": CHAIN_LIGHT, "chain10-heavy": CHAIN_HEAVY, "fanout": FANOUT + 2,
            "foreach100": FOREACH}


class Runner:
    def __init__(self) -> None:
        self.instance = None

    def setup(self, _: dict) -> dict:
        import dagster
        from dagster import DagsterInstance

        os.environ["DAGSTER_HOME"] = tempfile.mkdtemp(prefix="dagster-bench-")
        self.instance = DagsterInstance.local_temp(tempfile.mkdtemp(prefix="dagster-inst-"))
        return {"versions": {"dagster": dagster.__version__}, "python": sys.version.split()[0]}

    def run(self, command: dict) -> dict:
        from dagster import execute_job, reconstructable

        import dagster_jobs

        workload, variant = command["workload"], command["engine"]
        job = dagster_jobs.JOBS[workload]
        t0 = time.perf_counter()
        if variant == "dagster-inprocess":
            res = job.execute_in_process(instance=self.instance)
            ok, run_id = res.success, res.run_id
        else:
            config = {"max_concurrent": 1} if workload == "foreach100" else {}
            with execute_job(reconstructable(_job_fn(workload)), instance=self.instance,
                             run_config={"execution": {"config": {"multiprocess": config}}}
                             ) as res:
                ok, run_id = res.success, res.run_id
        wall = time.perf_counter() - t0
        if not ok:
            raise RuntimeError(f"run {run_id} failed")
        starts, ends, run_start, run_end = {}, {}, None, None
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type_value
            if kind == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                ends[event.step_key] = entry.timestamp
            elif kind == "PIPELINE_START":
                run_start = entry.timestamp
            elif kind in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
                run_end = entry.timestamp
        keys = [k for k in starts if k in ends
                and not (workload == "foreach100" and k == "items")]
        spans = [(starts[k], ends[k]) for k in keys]
        extra = {"compute": common.compute_seconds() * CHAIN_HEAVY} \
            if workload == "chain10-heavy" else {}
        return common.result(wall, spans, sequential=workload != "fanout",
                             tasks_expected=EXPECTED[workload], engine_start=run_start,
                             engine_end=run_end, **extra)


def _job_fn(workload: str):
    return {"chain40-light": chain40_light, "chain10-heavy": chain10_heavy,
            "fanout": fanout, "foreach100": foreach100}[workload]


# Module-level functions returning the jobs: what ``reconstructable`` can name.
def chain40_light():
    import dagster_jobs
    return dagster_jobs.chain40_light


def chain10_heavy():
    import dagster_jobs
    return dagster_jobs.chain10_heavy


def fanout():
    import dagster_jobs
    return dagster_jobs.fanout


def foreach100():
    import dagster_jobs
    return dagster_jobs.foreach100


if __name__ == "__main__":
    r = Runner()
    common.serve({"setup": r.setup, "run": r.run})
