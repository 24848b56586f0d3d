"""The README's end-to-end ETL example runs: CSV -> Python -> DuckDB Parquet -> PostgreSQL."""

from __future__ import annotations

import socket
from pathlib import Path

from kray.flow.parse import load_flow
from kray.inline import InlineRunner
from tests.conftest import ROOT, skip_or_fail


def postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        return True
    except OSError:
        return False


def test_sales_etl_example(tmp_path: Path) -> None:
    if not postgres_up():
        skip_or_fail("PostgreSQL is not running on 127.0.0.1:5432")
    runner = InlineRunner(tmp_path)
    csv = ROOT / "examples/etl/sales.csv"
    uri = runner.storage.put("demo/sales_etl/inputs/sales.csv", csv.read_bytes())
    execution = runner.run(load_flow(ROOT / "examples/etl/etl.yaml"), {"sales": uri})
    assert execution.state.current == "SUCCESS", execution.error
    transform = next(r for r in execution.task_runs if r.task_id == "transform")
    assert transform.outputs["vars"] == {"rows": 8}
    assert execution.outputs["cities"] == [
        {"city": "LYON", "orders": 3, "revenue_cents": 1850},
        {"city": "NANTES", "orders": 2, "revenue_cents": 1100},
        {"city": "PARIS", "orders": 3, "revenue_cents": 1975},
    ]
