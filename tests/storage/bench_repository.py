"""Throughput of ``Repository.write_batch``, the executor's hot path (not a test).

    python tests/storage/bench_repository.py [--compare]

Prints rows/s for batches of 1, 50 and 500 execution upserts (each execution with 40 task
runs, about 40 KB of JSON) and for 5,000 logs in one batch. ``--compare`` also times the other
ways of getting a batch of rows into DuckDB with bound values (executemany, one INSERT with a
VALUES list, unnest of list parameters, an appender) on the logs table, which is how the
appender was chosen, and INSERT ... ON CONFLICT DO UPDATE against delete + append for the
execution upsert.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kray.engine.execution import Attempt, Execution, TaskRun, task_run_id
from kray.engine.state import State, StateValue
from kray.storage.repository import Repository


def make_execution(now: datetime, task_runs: int = 40) -> dict[str, Any]:
    eid = uuid.uuid4().hex[:22]
    ex = Execution(id=eid, namespace="company.team", flow_id="etl", flow_revision=3,
                   state=StateValue.new(now).to(State.RUNNING, now),
                   inputs={"day": "2024-01-01", "limit": 100}, labels={"env": "prod"})
    for i in range(task_runs):
        state = StateValue.new(now).to(State.RUNNING, now).to(State.SUCCESS, now)
        ex.add(TaskRun(id=task_run_id(eid, None, f"task{i}", None, None), execution_id=eid,
                       task_id=f"task{i}", state=state, attempts=[Attempt(state, node="n1")],
                       outputs={"uri": f"kray:///company/team/etl/executions/{eid}/out{i}.csv",
                                "rows": i * 1000, "value": "x" * 60}))
    return ex.to_dict()


def make_logs(now: datetime, n: int) -> list[dict[str, Any]]:
    return [{"executionId": f"exec{i % 50}", "taskRunId": f"tr{i % 40}", "taskId": "task",
             "attempt": 1, "level": "INFO", "timestamp": now,
             "message": f"processed batch {i} of the input file, 1000 rows"} for i in range(n)]


def timed(label: str, rows_per_call: int, calls: int, fn: Callable[[int], None]) -> None:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {rows_per_call * calls / elapsed:>10,.0f} rows/s "
          f"{elapsed / calls * 1000:>9.2f} ms/batch")


def bench_repository(folder: Path) -> None:
    now = datetime.now(UTC)
    repo = Repository(folder / "bench.duckdb")
    docs = [make_execution(now) for _ in range(500)]
    for size, calls in ((1, 200), (50, 20), (500, 4)):
        batch = docs[:size]
        timed(f"write_batch: {size} execution upserts", size, calls,
              lambda i, b=batch: repo.write_batch(executions=b))
    for size, calls in ((50, 40), (5000, 10)):
        logs = make_logs(now, size)
        timed(f"write_batch: {size} logs", size, calls,
              lambda i, b=logs: repo.write_batch(logs=b))
    mixed = make_logs(now, 500)
    timed("write_batch: 50 executions + 500 logs", 550, 10,
          lambda i: repo.write_batch(executions=docs[:50], logs=mixed))
    repo.close()


def compare_strategies(folder: Path) -> None:
    import duckdb

    con = duckdb.connect(str(folder / "compare.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE logs (execution_id VARCHAR, task_run_id VARCHAR, task_id VARCHAR,"
                " attempt INTEGER, level VARCHAR, ts TIMESTAMPTZ, message VARCHAR, seq BIGINT)")
    now = datetime.now(UTC)
    insert = "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    types = ("VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "VARCHAR", "TIMESTAMPTZ", "VARCHAR",
             "BIGINT")
    unnest = ("INSERT INTO logs SELECT "
              + ", ".join(f"unnest(?::{t}[])" for t in types))

    def executemany(rows: list[tuple[Any, ...]]) -> None:
        con.executemany(insert, rows)

    def values_list(rows: list[tuple[Any, ...]]) -> None:
        placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        con.execute(f"INSERT INTO logs VALUES {placeholders}", [v for row in rows for v in row])

    def unnest_lists(rows: list[tuple[Any, ...]]) -> None:
        con.execute(unnest, [list(column) for column in zip(*rows, strict=True)])

    def appender(rows: list[tuple[Any, ...]]) -> None:
        app = con.appender("logs")
        app.append_rows(rows)
        app.flush()

    for name, fn in (("executemany", executemany), ("INSERT ... VALUES list", values_list),
                     ("INSERT ... SELECT unnest(lists)", unnest_lists), ("appender", appender)):
        for size in (50, 5000):
            if name == "executemany" and size > 500:
                continue
            rows = [(f"exec{i % 50}", f"tr{i}", "task", 1, "INFO", now, f"line {i} " * 5, i)
                    for i in range(size)]

            def batch(i: int, rows: list[tuple[Any, ...]] = rows, fn: Any = fn) -> None:
                con.execute("BEGIN TRANSACTION")
                fn(rows)
                con.execute("COMMIT")

            timed(f"{name}: {size} logs", size, max(2, 2000 // size), batch)
    con.close()


def compare_upserts(folder: Path) -> None:
    """INSERT ... ON CONFLICT DO UPDATE against delete + append, 500 documents a batch, on
    the real executions table (primary key and UNIQUE trigger_key)."""
    import duckdb

    from kray.storage.migrations import migrate
    from kray.storage.repository import _execution_row

    now = datetime.now(UTC)
    rows = [_execution_row(make_execution(now)) for _ in range(500)]
    columns = ("namespace", "flow_id", "flow_revision", "state", "start_date", "end_date",
               "labels", "parent_id", "original_id", "data")
    on_conflict = ("INSERT INTO executions SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET "
                   + ", ".join(f"{c} = excluded.{c}" for c in columns)
                   + ", trigger_key = coalesce(excluded.trigger_key, executions.trigger_key)")
    for name in ("on conflict", "delete + append"):
        con = duckdb.connect(str(folder / f"upsert-{name[0]}.duckdb"))
        con.execute("SET TimeZone = 'UTC'")
        migrate(con)
        con.execute("CREATE TEMP TABLE stage AS SELECT * FROM executions LIMIT 0")

        def batch(i: int, con: Any = con, name: str = name) -> None:
            con.execute("BEGIN TRANSACTION")
            table = "stage" if name == "on conflict" else "executions"
            if name != "on conflict":
                con.execute("DELETE FROM executions WHERE list_contains(?, id)",
                            [[r[0] for r in rows]])
            app = con.appender(table)
            app.append_rows(rows)
            app.flush()
            if name == "on conflict":
                con.execute(on_conflict)
                con.execute("DELETE FROM stage")
            con.execute("COMMIT")

        timed(f"{name}: 500 execution upserts", 500, 6, batch)
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true", help="also time insert strategies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kray-bench-") as tmp:
        bench_repository(Path(tmp))
        if args.compare:
            print()
            compare_strategies(Path(tmp))
            print()
            compare_upserts(Path(tmp))


if __name__ == "__main__":
    main()
