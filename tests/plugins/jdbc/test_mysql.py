"""``kray.jdbc.mysql.Query`` and ``Load`` against the machine's MariaDB/MySQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from kray.testing import TaskResult, TaskRunner

QUERY = "io.kestra.plugin.jdbc.mysql.Query"
LOAD = "kray.jdbc.mysql.Load"
PASSWORD = "my-Pa55word-never-shown"


def ok(result: TaskResult) -> dict:
    assert result.state == "SUCCESS", result.error
    return result.outputs


def my_query(runner: TaskRunner, url: str, sql: str, **props: Any) -> TaskResult:
    return runner.run({"id": "q", "type": QUERY, "url": url, "sql": sql, **props})


@pytest.fixture
def orders(my: Callable[..., Any]) -> str:
    t = my.table
    my(f"""CREATE TABLE {t} (id INT PRIMARY KEY, customer VARCHAR(40), total DECIMAL(10, 2),
                             placed DATETIME, paid BOOLEAN, big BIGINT UNSIGNED, raw VARBINARY(8),
                             at_time TIME)""")
    rows = [(i, f"c{i % 5}", Decimal(i) / 4, f"2024-03-{i % 28 + 1:02d} 10:00:00", i % 2,
             2**64 - i, bytes([i % 256, 0]), "01:30:00") for i in range(1, 3001)]
    with_null = [(3001, None, None, None, None, None, None, None)]
    my(f"INSERT INTO {t} VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * 3001),
       *[v for row in rows + with_null for v in row])
    return t


def test_fetch_one_and_fetch(runner: TaskRunner, mysql_url: str, orders: str) -> None:
    one = ok(my_query(runner, mysql_url, f"SELECT * FROM {orders} ORDER BY id",
                      fetchType="FETCH_ONE"))
    assert one == {"size": 1, "row": {
        "id": 1, "customer": "c1", "total": 0.25, "placed": "2024-03-02T10:00:00", "paid": 1,
        "big": str(2**64 - 1), "raw": "AQA=", "at_time": "PT1H30M"}}
    rows = ok(my_query(runner, mysql_url, f"SELECT customer, count(*) AS n FROM {orders} "
                                          "WHERE customer IS NOT NULL GROUP BY customer "
                                          "ORDER BY customer LIMIT 2", fetchType="FETCH"))
    assert rows == {"size": 2, "rows": [{"customer": "c0", "n": 600},
                                        {"customer": "c1", "n": 600}]}


def test_store_parquet_round_trip(runner: TaskRunner, mysql_url: str, orders: str) -> None:
    out = ok(my_query(runner, mysql_url, f"SELECT * FROM {orders} ORDER BY id",
                      fetchType="STORE", fetchSize=700))
    assert out["size"] == 3001
    path = runner.storage.local_path(out["uri"])
    with duckdb.connect() as con:
        types = dict(con.execute(f"SELECT column_name, column_type FROM "
                                 f"(DESCRIBE SELECT * FROM '{path}')").fetchall())
        assert types == {"id": "BIGINT", "customer": "VARCHAR", "total": "DECIMAL(10,2)",
                         "placed": "TIMESTAMP", "paid": "BIGINT", "big": "UBIGINT",
                         "raw": "BLOB", "at_time": "VARCHAR"}
        got = con.execute(f"SELECT count(*), sum(total), min(big), count(customer) "
                          f"FROM '{path}'").fetchone()
    assert got == (3001, Decimal("1125375.00"), 2**64 - 3000, 3000)


def test_store_jsonl(runner: TaskRunner, mysql_url: str, orders: str) -> None:
    out = ok(my_query(runner, mysql_url, f"SELECT id, total FROM {orders} WHERE id IN (1, 3001) "
                                         "ORDER BY id", fetchType="STORE", storeFormat="JSONL"))
    lines = runner.storage.read(out["uri"]).decode().splitlines()
    assert [json.loads(x) for x in lines] == [{"id": 1, "total": 0.25},
                                              {"id": 3001, "total": None}]


def test_parameters_and_one_transaction(runner: TaskRunner, mysql_url: str,
                                        my: Callable[..., Any]) -> None:
    t = my.table
    ok(my_query(runner, mysql_url, f"CREATE TABLE {t} (n INT) ENGINE=InnoDB"))
    ok(my_query(runner, mysql_url, f"INSERT INTO {t} VALUES (%(a)s), (%(b)s)",
                parameters={"a": 1, "b": "{{ 1 + 1 }}"}))
    failed = my_query(runner, mysql_url,
                      f"INSERT INTO {t} VALUES (3); INSERT INTO no_such_table VALUES (4)")
    assert failed.state == "FAILED" and "no_such_table" in (failed.error or "")
    out = ok(my_query(runner, mysql_url, f"SELECT sum(n) AS s, 7 % 4 AS m FROM {t}",
                      fetchType="FETCH_ONE"))
    assert out["row"] == {"s": 3.0, "m": 3}


def test_secrets_are_masked(runner: TaskRunner, mysql_url: str) -> None:
    url = f"jdbc:mysql://root:{PASSWORD}@127.0.0.1:1/test"
    refused = runner.run({"id": "q", "type": QUERY, "url": url, "sql": "SELECT 1"})
    assert refused.state == "FAILED" and "cannot connect" in (refused.error or "")
    assert "mysql://127.0.0.1:1/test as root" in (refused.error or "")
    # root has no password here: a wrong one is refused, and the refusal does not show it.
    denied = runner.run({"id": "q", "type": QUERY, "url": mysql_url, "password": PASSWORD,
                         "sql": "SELECT 1"})
    assert denied.state == "FAILED" and "Access denied" in (denied.error or "")
    for r in (refused, denied):
        assert PASSWORD not in json.dumps([r.logs, r.error, r.outputs])


# -- Load ------------------------------------------------------------------------------------

def test_load_csv_then_query(runner: TaskRunner, mysql_url: str, my: Callable[..., Any]) -> None:
    t = my.table
    my(f"CREATE TABLE {t} (id INT, name VARCHAR(40), score DECIMAL(5, 1), zip VARCHAR(5))")
    body = "id|name|score|zip\n" + "".join(f"{i}|\"n|{i}\"|{i / 2}|{i:05d}\n"
                                           for i in range(1, 2501)) + "2501|||\n"
    uri = runner.storage.put("inputs/people.csv", body.encode())
    out = ok(runner.run({"id": "load", "type": LOAD, "url": mysql_url, "from": uri, "table": t,
                         "delimiter": "|", "chunk": 1000}))
    assert out == {"rowCount": 2501}
    assert my(f"SELECT count(*), sum(score), min(zip), count(name) FROM {t}") == [
        (2501, Decimal("1563125.0"), "00001", 2500)]
    assert my(f"SELECT name FROM {t} WHERE id = 7") == [("n|7",)]


def test_load_parquet_from_a_store(runner: TaskRunner, mysql_url: str, orders: str,
                                   my: Callable[..., Any]) -> None:
    stored = ok(my_query(runner, mysql_url, f"SELECT id, total FROM {orders}",
                         fetchType="STORE"))
    copy = f"{orders}_copy"
    my(f"CREATE TABLE {copy} (total DECIMAL(10, 2), id INT)")
    try:
        out = ok(runner.run({"id": "load", "type": LOAD, "url": mysql_url, "table": copy,
                             "from": stored["uri"], "columns": ["id", "total"]}))
        assert out == {"rowCount": 3001}
        assert my(f"SELECT count(*), sum(total) FROM {copy}") == [(3001, Decimal("1125375.00"))]
    finally:
        my(f"DROP TABLE {copy}")


def test_a_failed_load_loads_nothing(runner: TaskRunner, mysql_url: str,
                                     my: Callable[..., Any]) -> None:
    t = my.table
    my(f"CREATE TABLE {t} (id INT NOT NULL) ENGINE=InnoDB")
    uri = runner.storage.put("inputs/ids.csv", b"id\n1\n2\n\n")  # the last row is a NULL id
    failed = runner.run({"id": "load", "type": LOAD, "url": mysql_url, "from": uri, "table": t,
                         "chunk": 2})
    assert failed.state == "FAILED"
    assert my(f"SELECT count(*) FROM {t}") == [(0,)]
