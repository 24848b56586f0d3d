"""``kray.jdbc.postgresql.Query`` and ``CopyIn`` against the machine's PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from kray.plugins.jdbc.results import FETCH_LIMIT
from kray.testing import TaskResult, TaskRunner

QUERY = "io.kestra.plugin.jdbc.postgresql.Query"
COPY_IN = "io.kestra.plugin.jdbc.postgresql.CopyIn"
PASSWORD = "pg-Pa55word-never-shown"


def ok(result: TaskResult) -> dict:
    assert result.state == "SUCCESS", result.error
    return result.outputs


def pg_query(runner: TaskRunner, url: str, sql: str, variables: dict | None = None,
             **props: Any) -> TaskResult:
    return runner.run({"id": "q", "type": QUERY, "url": url, "sql": sql, **props}, variables)


@pytest.fixture
def sales(pg: Callable[..., Any]) -> str:
    """A table of 25,000 rows with typical column types."""
    table = pg.table
    pg(f"""CREATE TABLE {table} (id int PRIMARY KEY, region text, amount numeric(10, 2),
                                 day date, at timestamptz, tags jsonb, ok boolean)""")
    pg(f"""INSERT INTO {table}
           SELECT i, (ARRAY['north', 'south', 'east'])[i % 3 + 1], i * 0.25,
                  DATE '2024-01-01' + i % 366,
                  TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 minute',
                  jsonb_build_object('n', i), i % 2 = 0
           FROM generate_series(1, 25000) i""")
    return table


def test_fetch_one_and_fetch(runner: TaskRunner, pg_url: str, sales: str) -> None:
    one = ok(pg_query(runner, pg_url, f"SELECT * FROM {sales} ORDER BY id", fetchType="FETCH_ONE"))
    assert one == {"size": 1, "row": {
        "id": 1, "region": "south", "amount": 0.25, "day": "2024-01-02",
        "at": "2024-01-01T00:01:00+00:00", "tags": {"n": 1}, "ok": False}}
    rows = ok(pg_query(runner, pg_url,
                       f"SELECT region, count(*) AS n FROM {sales} GROUP BY region ORDER BY region",
                       fetchType="FETCH"))
    assert rows == {"size": 3, "rows": [{"region": "east", "n": 8333},
                                        {"region": "north", "n": 8333},
                                        {"region": "south", "n": 8334}]}


def test_fetch_cap(runner: TaskRunner, pg_url: str, sales: str) -> None:
    result = pg_query(runner, pg_url, f"SELECT id FROM {sales}", fetchType="FETCH")
    assert result.state == "FAILED" and "STORE" in (result.error or "")
    capped = ok(pg_query(runner, pg_url, f"SELECT id FROM {sales} LIMIT {FETCH_LIMIT}",
                         fetchType="FETCH"))
    assert capped["size"] == FETCH_LIMIT


def test_store_parquet_round_trip(runner: TaskRunner, pg_url: str, sales: str) -> None:
    out = ok(pg_query(runner, pg_url, f"SELECT * FROM {sales} ORDER BY id", fetchType="STORE",
                      fetchSize=4000))
    assert set(out) == {"uri", "size"} and out["size"] == 25000
    path = runner.storage.local_path(out["uri"])
    with duckdb.connect() as con:
        types = dict(con.execute(f"SELECT column_name, column_type FROM "
                                 f"(DESCRIBE SELECT * FROM '{path}')").fetchall())
        assert types == {"id": "INTEGER", "region": "VARCHAR", "amount": "DECIMAL(10,2)",
                         "day": "DATE", "at": "TIMESTAMP WITH TIME ZONE", "tags": "VARCHAR",
                         "ok": "BOOLEAN"}
        got = con.execute(f"SELECT count(*), sum(amount), max(day), "
                          f"json_extract(any_value(tags), '$.n') IS NOT NULL FROM '{path}'"
                          ).fetchone()
    assert got == (25000, Decimal("78128125.00"), date(2024, 12, 31), True)


def test_store_jsonl(runner: TaskRunner, pg_url: str, sales: str) -> None:
    out = ok(pg_query(runner, pg_url, f"SELECT id, amount, tags FROM {sales} WHERE id <= 2 "
                                      "ORDER BY id", fetchType="STORE", storeFormat="JSONL"))
    lines = runner.storage.read(out["uri"]).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": 1, "amount": 0.25, "tags": {"n": 1}}, {"id": 2, "amount": 0.5, "tags": {"n": 2}}]


def test_a_script_runs_in_one_transaction(runner: TaskRunner, pg_url: str,
                                          pg: Callable[..., Any]) -> None:
    t = pg.table
    ok(pg_query(runner, pg_url, f"CREATE TABLE {t} (n int); INSERT INTO {t} VALUES (1)"))
    failed = pg_query(runner, pg_url, f"INSERT INTO {t} VALUES (2); INSERT INTO {t} VALUES ('x')")
    assert failed.state == "FAILED" and "invalid input syntax" in (failed.error or "")
    assert pg(f"SELECT n FROM {t}") == [(1,)]  # the first insert was rolled back with the second


def test_parameters_and_percent_signs(runner: TaskRunner, pg_url: str, sales: str) -> None:
    out = ok(pg_query(runner, pg_url,
                      f"SELECT count(*) AS n FROM {sales} WHERE region = %(region)s "
                      "AND id %% 2 = 0", {"inputs": {"region": "north"}},
                      parameters={"region": "{{ inputs.region }}"}, fetchType="FETCH_ONE"))
    assert out["row"] == {"n": sum(1 for i in range(1, 25001) if i % 6 == 0)}
    # A statement without placeholders gets no parameters, so '%' needs no doubling.
    out = ok(pg_query(runner, pg_url, "SELECT 7 % 3 AS m", parameters={"unused": 1},
                      fetchType="FETCH_ONE"))
    assert out["row"] == {"m": 1}


@pytest.mark.parametrize("url", [
    "jdbc:postgresql://127.0.0.1:5432/test?ApplicationName=kray-test&ssl=false",
    "postgresql://127.0.0.1:5432/test",
    "host=127.0.0.1 port=5432 dbname=test",
])
def test_url_forms(runner: TaskRunner, url: str) -> None:
    out = ok(runner.run({"id": "q", "type": QUERY, "url": url, "username": "postgres",
                         "sql": "SELECT current_database() AS db", "fetchType": "FETCH_ONE"}))
    assert out["row"] == {"db": "test"}


def test_a_bad_url_fails_clearly(runner: TaskRunner) -> None:
    result = runner.run({"id": "q", "type": QUERY, "url": "jdbc:mysql://h/db", "sql": "SELECT 1"})
    assert result.state == "FAILED" and "jdbc:postgresql://" in (result.error or "")


def test_secrets_are_masked_in_logs_errors_and_outputs(runner: TaskRunner, pg_url: str) -> None:
    # Trust authentication accepts any password, so the SQL can echo it back.
    result = runner.run({"id": "q", "type": QUERY, "url": pg_url, "password": PASSWORD,
                         "sql": f"SELECT '{PASSWORD}' AS echo", "fetchType": "FETCH_ONE"})
    assert ok(result)["row"] == {"echo": "******"}
    failed = runner.run({"id": "q", "type": QUERY, "url": pg_url, "password": PASSWORD,
                         "sql": f"SELECT '{PASSWORD}'::int"})
    assert failed.state == "FAILED" and "******" in (failed.error or "")
    url = f"jdbc:postgresql://127.0.0.1:1/test?user=postgres&password={PASSWORD}"
    refused = runner.run({"id": "q", "type": QUERY, "url": url, "sql": "SELECT 1"})
    assert refused.state == "FAILED" and "cannot connect" in (refused.error or "")
    for r in (result, failed, refused):
        text = json.dumps([r.logs, r.error, r.outputs])
        assert PASSWORD not in text
    assert any("127.0.0.1:1" in m for m in refused.messages)


# -- CopyIn ----------------------------------------------------------------------------------

def test_copy_in_csv_then_query(runner: TaskRunner, pg_url: str, pg: Callable[..., Any]) -> None:
    t = pg.table
    pg(f"CREATE TABLE {t} (id int, name text, note text)")
    uri = runner.storage.put("inputs/people.csv",
                             b"id;name;note\n1;Ada;\n2;\"Grace; H\";\"\"\n3;Linus;ok\n")
    out = ok(runner.run({"id": "copy", "type": COPY_IN, "url": pg_url, "from": uri,
                         "table": f"public.{t}", "columns": ["id", "name", "note"],
                         "header": True, "delimiter": ";"}))
    assert out == {"rowCount": 3}
    rows = ok(pg_query(runner, pg_url, f"SELECT * FROM {t} ORDER BY id", fetchType="FETCH"))
    assert rows["rows"] == [{"id": 1, "name": "Ada", "note": None},
                            {"id": 2, "name": "Grace; H", "note": ""},
                            {"id": 3, "name": "Linus", "note": "ok"}]


def test_copy_in_parquet_from_a_store(runner: TaskRunner, pg_url: str, sales: str,
                                      pg: Callable[..., Any]) -> None:
    stored = ok(pg_query(runner, pg_url, f"SELECT id, amount, day FROM {sales}",
                         fetchType="STORE"))
    copy = f"{sales}_copy"
    pg(f"CREATE TABLE {copy} (id int, amount numeric(10, 2), day date)")
    try:
        out = ok(runner.run({"id": "copy", "type": COPY_IN, "url": pg_url,
                             "from": stored["uri"], "table": copy, "format": "PARQUET"}))
        assert out == {"rowCount": 25000}
        assert pg(f"SELECT count(*), sum(amount), max(day) FROM {copy}") == [
            (25000, Decimal("78128125.00"), date(2024, 12, 31))]
    finally:
        pg(f"DROP TABLE {copy}")


def test_copy_in_failures(runner: TaskRunner, pg_url: str, pg: Callable[..., Any]) -> None:
    t = pg.table
    pg(f"CREATE TABLE {t} (id int)")
    missing = runner.run({"id": "copy", "type": COPY_IN, "url": pg_url,
                          "from": "kray:///nowhere.csv", "table": t})
    assert missing.state == "FAILED" and "file not found" in (missing.error or "")
    uri = runner.storage.put("inputs/bad.csv", b"1\n2\nthree\n")
    bad = runner.run({"id": "copy", "type": COPY_IN, "url": pg_url, "from": uri, "table": t})
    assert bad.state == "FAILED" and "three" in (bad.error or "")
    assert pg(f"SELECT count(*) FROM {t}") == [(0,)]
