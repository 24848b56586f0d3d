"""``kray.duckdb.Query`` / ``Queries`` on real DuckDB databases and real internal storage."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from kray.plugins.jdbc.results import FETCH_LIMIT
from kray.testing import TaskResult, TaskRunner

QUERY = "io.kestra.plugin.jdbc.duckdb.Query"
QUERIES = "io.kestra.plugin.jdbc.duckdb.Queries"


def ok(result: TaskResult) -> dict:
    assert result.state == "SUCCESS", result.error
    return result.outputs


def query(runner: TaskRunner, sql: str, variables: dict | None = None,
          **props: object) -> TaskResult:
    return runner.run({"id": "q", "type": QUERY, "sql": sql, **props}, variables)


def read_back(runner: TaskRunner, uri: str, sql: str = "SELECT * FROM f ORDER BY ALL") -> list:
    path = runner.storage.local_path(uri)
    assert path is not None and Path(path).is_file()
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW f AS SELECT * FROM '{path}'")
        return con.execute(sql).fetchall()


# -- fetch types ---------------------------------------------------------------------------

def test_none_outputs_nothing(runner: TaskRunner) -> None:
    assert ok(query(runner, "CREATE TABLE t AS SELECT 1 AS a; SELECT * FROM t")) == {}


def test_fetch_one_gives_the_first_row(runner: TaskRunner) -> None:
    out = ok(query(runner, "SELECT * FROM range(5) r(n) ORDER BY n DESC", fetchType="FETCH_ONE"))
    assert out == {"row": {"n": 4}, "size": 1}
    out = ok(query(runner, "SELECT 1 AS n WHERE false", fetchType="FETCH_ONE"))
    assert out == {"row": None, "size": 0}


def test_fetch_gives_every_row_of_the_last_statement(runner: TaskRunner) -> None:
    out = ok(query(runner, """
        CREATE TABLE cities (name VARCHAR, pop INTEGER);
        INSERT INTO cities VALUES ('Paris', 2100), ('Lyon', 520), ('Nantes', 320);
        SELECT name, pop FROM cities WHERE pop > 400 ORDER BY pop DESC;
        """, fetchType="fetch"))
    assert out == {"rows": [{"name": "Paris", "pop": 2100}, {"name": "Lyon", "pop": 520}],
                   "size": 2}


def test_fetch_rows_are_json_safe(runner: TaskRunner) -> None:
    out = ok(query(runner, """
        SELECT DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 13:45:00' AS ts,
               TIMESTAMPTZ '2024-02-29 13:45:00+00' AS tz, TIME '08:30:00' AS t,
               12.50::DECIMAL(10, 2) AS price, 123456789012345678.99::DECIMAL(38, 2) AS big,
               '\\x00\\xFF'::BLOB AS raw, INTERVAL 90 MINUTE AS span,
               '4ac7a9e9-607c-4c8a-84f3-843f0191e3fd'::UUID AS id, 'NaN'::DOUBLE AS nan,
               [1, 2] AS list, {'k': DATE '2024-01-01'} AS struct, MAP {1: 'a'} AS map,
               170141183460469231731687303715884105727::HUGEINT AS huge
        """, fetchType="FETCH_ONE", timeZoneId="UTC"))
    row = out["row"]
    assert row == {
        "d": "2024-02-29", "ts": "2024-02-29T13:45:00", "tz": "2024-02-29T13:45:00+00:00",
        "t": "08:30:00", "price": 12.5, "big": "123456789012345678.99", "raw": "AP8=",
        "span": "PT1H30M", "id": "4ac7a9e9-607c-4c8a-84f3-843f0191e3fd", "nan": None,
        "list": [1, 2], "struct": {"k": "2024-01-01"}, "map": {"1": "a"},
        "huge": "170141183460469231731687303715884105727"}
    json.dumps(row, allow_nan=False)


def test_fetch_over_the_cap_fails_and_suggests_store(runner: TaskRunner) -> None:
    result = query(runner, f"SELECT * FROM range({FETCH_LIMIT + 1})", fetchType="FETCH")
    assert result.state == "FAILED"
    assert "STORE" in (result.error or "") and str(FETCH_LIMIT) in (result.error or "")
    assert ok(query(runner, f"SELECT * FROM range({FETCH_LIMIT})", fetchType="FETCH"))[
        "size"] == FETCH_LIMIT


def test_legacy_fetch_booleans(runner: TaskRunner) -> None:
    assert ok(query(runner, "SELECT 7 AS n", fetchOne=True)) == {"row": {"n": 7}, "size": 1}
    assert ok(query(runner, "SELECT 7 AS n", fetch=True)) == {"rows": [{"n": 7}], "size": 1}
    assert set(ok(query(runner, "SELECT 7 AS n", store=True))) == {"uri", "size"}


# -- STORE ---------------------------------------------------------------------------------

def test_store_writes_parquet_to_storage_not_to_outputs(runner: TaskRunner) -> None:
    result = query(runner, """
        SELECT range AS id, range % 3 AS k, DATE '2024-01-01' + range::INTEGER AS day
        FROM range(100000) -- a comment after the last statement;
        """, fetchType="STORE")
    out = ok(result)
    assert set(out) == {"uri", "size"} and out["size"] == 100000
    assert out["uri"].endswith("/q.parquet") and f"/{result.task_run_id}/" in out["uri"]
    assert read_back(runner, out["uri"], "SELECT count(*), sum(id), max(day) FROM f") == [
        (100000, 4999950000, __import__("datetime").date(2297, 10, 15))]
    assert not [u for u in runner.storage.list("") if ".kray-tmp-" in u]


def test_store_jsonl(runner: TaskRunner) -> None:
    out = ok(query(runner, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL ORDER BY a",
                   fetchType="STORE", storeFormat="jsonl"))
    assert out["uri"].endswith(".jsonl") and out["size"] == 2
    lines = runner.storage.read(out["uri"]).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]


def test_store_of_a_statement_copy_cannot_wrap(runner: TaskRunner) -> None:
    out = ok(query(runner, "CREATE TABLE t (a INT, b VARCHAR); PRAGMA table_info('t')",
                   fetchType="STORE"))
    assert out["size"] == 2
    assert [r[1] for r in read_back(runner, out["uri"], "SELECT * FROM f ORDER BY cid")] == [
        "a", "b"]


def test_a_failed_store_leaves_nothing_behind(runner: TaskRunner) -> None:
    result = query(runner, "SELECT CASE WHEN range < 50000 THEN range ELSE error('boom') END "
                           "FROM range(100000)", fetchType="STORE")
    assert result.state == "FAILED" and "boom" in (result.error or "")
    assert runner.storage.list("") == []


# -- files -----------------------------------------------------------------------------------

def test_input_and_output_files(runner: TaskRunner) -> None:
    stored = runner.storage.put("inputs/prices.csv", b"item,price\napple,1.5\npear,2\n")
    out = ok(runner.run({
        "id": "files", "type": QUERY,
        "inputFiles": {"data.csv": "item,qty\napple,3\npear,4\n",
                       "sub/prices.csv": "{{ inputs.prices }}"},
        "outputFiles": ["total.csv", "items.json"],
        "sql": """
            CREATE TABLE joined AS
              SELECT d.item, d.qty * p.price AS amount
              FROM read_csv('{{ workingDir }}/data.csv') d
              JOIN read_csv('sub/prices.csv') p USING (item);
            COPY (SELECT sum(amount) AS total FROM joined) TO '{{ outputFiles['total.csv'] }}'
              (HEADER);
            COPY (FROM joined ORDER BY item) TO '{{ outputFiles['items.json'] }}' (FORMAT json);
            SELECT count(*) AS n FROM joined
            """,
        "fetchType": "FETCH_ONE"}, {"inputs": {"prices": stored}}))
    assert out["row"] == {"n": 2}
    files = out["outputFiles"]
    assert runner.storage.read(files["total.csv"]) == b"total\n12.5\n"
    assert runner.storage.read(files["items.json"]).decode().splitlines() == [
        '{"item":"apple","amount":4.5}', '{"item":"pear","amount":8.0}']


def test_input_files_as_a_json_template(runner: TaskRunner) -> None:
    out = ok(runner.run({"id": "q", "type": QUERY, "inputFiles": "{{ files }}",
                         "sql": "SELECT * FROM read_csv('a.csv')", "fetchType": "FETCH"},
                        {"files": json.dumps({"a.csv": "x\n1\n"})}))
    assert out["rows"] == [{"x": 1}]


@pytest.mark.parametrize("props, message", [
    ({"outputFiles": ["never.csv"]}, "output file 'never.csv' was not written"),
    ({"inputFiles": {"../escape.csv": "x"}}, "inputFiles"),
    ({"outputFiles": ["/etc/passwd"]}, "outputFiles"),
    ({"inputFiles": {"a.csv": "kray:///nowhere/a.csv"}}, "file not found"),
])
def test_file_errors(runner: TaskRunner, props: dict, message: str) -> None:
    result = query(runner, "SELECT 1", **props)
    assert result.state == "FAILED" and message in (result.error or "")


# -- parameters, errors, Queries -------------------------------------------------------------

def test_named_parameters_go_to_the_statements_that_use_them(runner: TaskRunner) -> None:
    out = ok(query(runner, "CREATE TABLE t AS SELECT * FROM range(10) r(n); "
                           "SELECT count(*) AS c FROM t WHERE n >= $low AND n < $high",
                   {"inputs": {"low": 2}}, parameters={"low": "{{ inputs.low }}", "high": 8},
                   fetchType="FETCH_ONE"))
    assert out["row"] == {"c": 6}
    result = query(runner, "SELECT $missing AS m", parameters={"x": 1})
    assert result.state == "FAILED" and "missing" in (result.error or "")


def test_sql_errors_fail_the_task_with_duckdbs_message(runner: TaskRunner) -> None:
    result = query(runner, "SELECT * FROM no_such_table")
    assert result.state == "FAILED"
    assert (result.error or "").startswith("DuckDB: ") and "no_such_table" in result.error


def test_sql_is_a_template(runner: TaskRunner) -> None:
    out = ok(query(runner, "SELECT '{{ inputs.who | upper }}' AS who", {"inputs": {"who": "kray"}},
                   fetchType="FETCH_ONE"))
    assert out["row"] == {"who": "KRAY"}


def test_queries_outputs_one_result_per_select(runner: TaskRunner) -> None:
    out = ok(runner.run({"id": "qs", "type": QUERIES, "fetchType": "FETCH", "sql": """
        CREATE TABLE t AS SELECT 1 AS a;
        SELECT a FROM t;
        INSERT INTO t VALUES (2);
        SELECT count(*) AS n FROM t;
        """}))
    assert out == {"outputs": [{"rows": [{"a": 1}], "size": 1},
                               {"rows": [{"n": 2}], "size": 1}]}
    stored = ok(runner.run({"id": "qs", "type": QUERIES, "fetchType": "STORE",
                            "sql": "SELECT 1 AS a; SELECT 2 AS b"}))["outputs"]
    assert [s["uri"].rsplit("/", 1)[-1] for s in stored] == ["qs-0.parquet", "qs-1.parquet"]
    assert read_back(runner, stored[1]["uri"]) == [(2,)]


def test_validation() -> None:
    from kray.plugins.duckdb.query import Query

    with pytest.raises(ValidationError):
        Query.model_validate({"id": "q", "type": QUERY, "sql": "x", "fetchType": "ALL"})
    with pytest.raises(ValidationError):
        Query.model_validate({"id": "q", "type": QUERY, "sql": "x", "url": "jdbc:pg:x"})
    with pytest.raises(ValidationError):
        Query.model_validate({"id": "q", "type": QUERY, "sql": "x", "unknown": 1})


# -- database files --------------------------------------------------------------------------

def test_a_local_database_file_persists(runner: TaskRunner, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    ok(query(runner, "CREATE TABLE t AS SELECT 42 AS answer", databaseUri=str(db)))
    out = ok(query(runner, "SELECT answer FROM t", url=f"jdbc:duckdb:{db}",
                   fetchType="FETCH_ONE"))
    assert out == {"row": {"answer": 42}, "size": 1}
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT answer FROM t").fetchall() == [(42,)]


def test_a_storage_database_is_downloaded_and_uploaded_when_changed(
        runner: TaskRunner, tmp_path: Path) -> None:
    made = ok(query(runner, "CREATE TABLE t AS SELECT 1 AS v", outputDbFile=True))
    first = made["databaseUri"]
    assert first.startswith("kray:///") and first.endswith("/q.duckdb")
    changed = ok(query(runner, "INSERT INTO t VALUES (2)", databaseUri=first))
    second = changed["databaseUri"]
    assert second != first
    read = ok(query(runner, "SELECT sum(v) AS s FROM t", databaseUri=second,
                    fetchType="FETCH_ONE"))
    assert read["row"] == {"s": 3}
    assert read["databaseUri"] == second  # unchanged by a read: the same file is passed on
    # The first file is as the first task left it: a later task never rewrites it.
    again = ok(query(runner, "SELECT sum(v) AS s FROM t", databaseUri=first,
                     fetchType="FETCH_ONE"))
    assert again["row"] == {"s": 1}


def test_a_missing_storage_database_fails(runner: TaskRunner) -> None:
    result = query(runner, "SELECT 1", databaseUri="kray:///company/team/none.duckdb")
    assert result.state == "FAILED" and "file not found" in (result.error or "")


def test_each_run_gets_a_database_of_its_own(runner: TaskRunner) -> None:
    # In-memory databases are opened ahead of time (kray.plugins.duckdb.connections): a spare
    # must never carry one run's tables or settings into the next.
    ok(query(runner, "CREATE TABLE leftover AS SELECT 1 AS a; SET GLOBAL default_order = 'DESC'"))
    for _ in range(3):
        out = ok(query(runner, "SELECT count(*) AS n FROM duckdb_tables() "
                               "WHERE table_name = 'leftover'", fetchType="FETCH_ONE"))
        assert out["row"] == {"n": 0}
    out = ok(query(runner, "SELECT current_setting('default_order') AS o", fetchType="FETCH_ONE"))
    assert out["row"] == {"o": "ASCENDING"}
