"""DuckDB tasks inside whole flows, stepped in-process by ``kray.inline.InlineRunner``."""

from __future__ import annotations

from pathlib import Path

from kray.flow.parse import load_flow, parse_flow
from kray.inline import InlineRunner
from tests.conftest import ROOT

FLOW = """
id: warehouse
namespace: company.team
tasks:
  - id: extract
    type: io.kestra.plugin.jdbc.duckdb.Query
    sql: |
      SELECT range AS id, ['north', 'south', 'east'][range % 3 + 1] AS region,
             (range * 37) % 101 AS amount
      FROM range(1000)
    fetchType: STORE
  - id: load
    type: io.kestra.plugin.jdbc.duckdb.Query
    outputDbFile: true
    sql: |
      CREATE TABLE sales AS SELECT * FROM read_parquet('{{ outputs.extract.uri }}');
  - id: transform
    type: kray.duckdb.Query
    databaseUri: "{{ outputs.load.databaseUri }}"
    sql: |
      CREATE TABLE totals AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
  - id: report
    type: io.kestra.plugin.jdbc.duckdb.Query
    databaseUri: "{{ outputs.transform.databaseUri }}"
    sql: SELECT region, total FROM totals ORDER BY region
    fetchType: FETCH
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.report.size }} regions, {{ outputs.report.rows[0].region }} first"
"""


def test_a_database_file_travels_from_task_to_task(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path)
    execution = runner.run(parse_flow(FLOW)).to_dict()
    runs = {tr["taskId"]: tr for tr in execution["taskRuns"]}
    assert execution["state"] == "SUCCESS", {k: r["error"] for k, r in runs.items()}
    load, transform = runs["load"]["outputs"], runs["transform"]["outputs"]
    assert load["databaseUri"] != transform["databaseUri"]
    assert runner.storage.exists(load["databaseUri"])
    assert runner.storage.exists(transform["databaseUri"])
    expected = {region: sum((i * 37) % 101 for i in range(1000) if i % 3 == n)
                for n, region in enumerate(["north", "south", "east"])}
    assert runs["report"]["outputs"]["rows"] == [
        {"region": r, "total": expected[r]} for r in sorted(expected)]
    assert runs["check"]["outputs"]["value"] == "3 regions, east first"


def test_the_example_flow(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path)
    execution = runner.run(load_flow(ROOT / "examples" / "duckdb.yaml")).to_dict()
    assert execution["state"] == "SUCCESS", [tr["error"] for tr in execution["taskRuns"]]
    report = runner.storage.read(execution["outputs"]["report"]).decode().splitlines()
    assert report[0] == "region,orders,revenue" and len(report) == 5
    assert sum(int(line.split(",")[1]) for line in report[1:]) == 100000
