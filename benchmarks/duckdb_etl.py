"""A DuckDB aggregation through a kray flow on Ray against the same SQL in DuckDB alone.

    python -m benchmarks.duckdb_etl [--rows 10000000] [--runs 3]

DuckDB generates a Parquet file of --rows rows into internal storage (a local folder). Then the
same GROUP BY, with sums and counts, is written to a Parquet result:

* kray: a flow of one ``kray.duckdb.Query`` (fetchType STORE) reading the input as
  ``kray:///...``, run the way ``kray run`` runs it: an embedded Ray on 127.0.0.1, the executor
  actor, state persisted to DuckDB. Timed from the request to create the execution until the
  follower sees it end.
* DuckDB alone: a fresh in-process connection running ``COPY (<same SELECT>) TO '...'``.

Each figure is the median of --runs after one warm-up run of each; the target is kray within
1.2x of DuckDB alone. Ray runs its workers at niceness 15; the baseline runs at the same
niceness (--niceness), so that other load on the machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

NAMESPACE, FLOW_ID = "bench", "duckdb_etl"
INPUT = "bench/duckdb_etl/_files/events.parquet"

GENERATE = """
COPY (
  SELECT range AS id,
         range % 100000 AS customer_id,
         'category_' || (range % 20) AS category,
         DATE '2024-01-01' + (range % 365)::INTEGER AS day,
         (((range * 7919) % 10007) / 100)::DECIMAL(10, 2) AS amount,
         (range % 9) + 1 AS quantity
  FROM range({rows})
) TO '{path}' (FORMAT parquet)
"""

AGGREGATE = """
SELECT category, day,
       count(*) AS orders,
       max(customer_id) AS top_customer,
       sum(quantity) AS items,
       sum(amount) AS revenue,
       sum(amount * quantity) AS gross
FROM read_parquet('{source}')
GROUP BY category, day
"""


def flow_source(flow_id: str = FLOW_ID, sql: str | None = None) -> str:
    """The benchmark's flow; with ``sql``, the same flow running other SQL (the fixed cost)."""
    sql = sql or AGGREGATE.format(source="{{ inputs.events }}")
    sql = sql.strip().replace("\n", "\n      ")
    return f"""id: {flow_id}
namespace: {NAMESPACE}
inputs:
  - id: events
    type: STRING
tasks:
  - id: aggregate
    type: kray.duckdb.Query
    fetchType: STORE
    sql: |
      {sql}
"""


def run_kray(ray, executor, uri: str, flow_id: str = FLOW_ID) -> tuple[float, dict]:
    from kray.runner import follow

    t0 = time.perf_counter()
    created = ray.get(executor.create_execution.remote(NAMESPACE, flow_id, {"events": uri}))
    execution = follow(executor, created["id"])
    wall = time.perf_counter() - t0
    if execution["state"] != "SUCCESS":
        errors = [tr.get("error") for tr in execution["taskRuns"]]
        raise SystemExit(f"the flow ended {execution['state']}: {errors}")
    return wall, execution["taskRuns"][0]["outputs"]


def run_duckdb(source: str, target: str) -> tuple[float, int]:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    try:
        sql = AGGREGATE.format(source=source).strip()
        rows = con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)").fetchone()[0]
    finally:
        con.close()
    return time.perf_counter() - t0, int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--niceness", type=int, default=15,
                        help="niceness of the DuckDB-alone baseline (Ray's workers run at 15); "
                             "-1 leaves this process as it is")
    args = parser.parse_args()

    import duckdb
    import ray
    from kray.storage.internal import InternalStorage

    from kray.executor import ExecutorConfig, executor_actor

    data = Path(tempfile.mkdtemp(prefix="kray-bench-duckdb-"))
    config = ExecutorConfig(data_dir=str(data))
    storage = InternalStorage(config.resolved_storage_url())
    uri = storage.uri(INPUT)
    local = storage.local_path(uri)
    assert local is not None
    os.makedirs(os.path.dirname(local), exist_ok=True)
    t0 = time.perf_counter()
    with duckdb.connect() as con:
        con.execute(GENERATE.format(rows=args.rows, path=local))
    print(f"generated {args.rows:,} rows, {os.path.getsize(local) / 1e6:.0f} MB of Parquet "
          f"in {time.perf_counter() - t0:.1f} s")

    from kray.runner import loopback_only
    loopback_only()
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
             namespace="kray",
             log_to_driver=False, logging_level="ERROR")
    try:
        if args.niceness >= 0:  # after Ray started: its own processes keep their priority
            os.nice(args.niceness - os.nice(0))
        executor = executor_actor(config)
        ray.get(executor.ping.remote())
        ray.get(executor.deploy.remote(flow_source()))
        noop = f"{FLOW_ID}_noop"
        ray.get(executor.deploy.remote(flow_source(noop, "SELECT '{{ inputs.events }}' AS x")))
        alone_target = str(data / "alone.parquet")

        _, outputs = run_kray(ray, executor, uri)  # warm-up: a worker with DuckDB imported
        run_kray(ray, executor, uri, noop)
        run_duckdb(local, alone_target)
        kray_times, alone_times, noop_times = [], [], []
        for _ in range(args.runs):
            wall, outputs = run_kray(ray, executor, uri)
            kray_times.append(wall)
            seconds, groups = run_duckdb(local, alone_target)
            alone_times.append(seconds)
            noop_times.append(run_kray(ray, executor, uri, noop)[0])
        if outputs["size"] != groups:
            raise SystemExit(f"results differ: kray {outputs['size']} rows, DuckDB {groups}")
        with duckdb.connect() as con:
            same = con.execute(
                f"SELECT count(*) FROM (FROM '{storage.local_path(outputs['uri'])}' "
                f"EXCEPT FROM '{alone_target}')").fetchone()[0]
        if same:
            raise SystemExit("results differ between kray and DuckDB alone")
    finally:
        ray.shutdown()

    k, d = statistics.median(kray_times), statistics.median(alone_times)
    print(f"GROUP BY over {args.rows:,} rows -> {groups:,} groups, Parquet to Parquet "
          f"(median of {args.runs}, after a warm-up; {os.cpu_count()} CPUs, baseline at "
          f"niceness {os.nice(0)})")
    print(f"kray flow (kray.duckdb.Query STORE on Ray): {k * 1000:.0f} ms   "
          f"runs: {', '.join(f'{t * 1000:.0f}' for t in kray_times)}")
    print(f"DuckDB alone (same SQL, in process):        {d * 1000:.0f} ms   "
          f"runs: {', '.join(f'{t * 1000:.0f}' for t in alone_times)}")
    print(f"ratio kray / DuckDB: {k / d:.2f}x (target <= 1.2x)")
    print(f"fixed cost of a run (the same flow, SELECT of one row): "
          f"{statistics.median(noop_times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
