"""Internal storage from DuckDB's SQL (``kray:///...``) on the local, memory and S3 backends."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from kray.plugins.duckdb.filesystem import KrayFileSystem, rewrite_storage_literals
from kray.storage.internal import InternalStorage
from kray.testing import TaskResult, TaskRunner

QUERY = "kray.duckdb.Query"
ROWS = 300_000  # several Parquet row groups, read by several DuckDB threads at once
SUMS = (ROWS, ROWS * (ROWS - 1) // 2, sum(i % 7 for i in range(ROWS)))
MAKE = (f"SELECT range AS id, range % 7 AS k, 'name-' || range AS name FROM range({ROWS})")


def ok(result: TaskResult) -> dict:
    assert result.state == "SUCCESS", result.error
    return result.outputs


def query(runner: TaskRunner, sql: str, **props: object) -> dict:
    return ok(runner.run({"id": "q", "type": QUERY, "sql": sql, **props}))


# -- the rewrite (local backend) -------------------------------------------------------------

def fake_path(uri: str) -> str:
    return "/data/" + InternalStorage.path_of(uri)


@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM 'kray:///a/b.parquet'", "SELECT * FROM '/data/a/b.parquet'"),
    ("SELECT * FROM read_parquet('kray:///a.parquet', union_by_name = true)",
     "SELECT * FROM read_parquet('/data/a.parquet', union_by_name = true)"),
    ("SELECT * FROM read_csv(['kray:///a.csv', 'kray:///b.csv'])",
     "SELECT * FROM read_csv(['/data/a.csv', '/data/b.csv'])"),
    ("SELECT * FROM t JOIN 'kray:///j.parquet' USING (id)",
     "SELECT * FROM t JOIN '/data/j.parquet' USING (id)"),
    ("COPY (SELECT 1) TO 'kray:///o/x.parquet' (FORMAT parquet)",
     "COPY (SELECT 1) TO '/data/o/x.parquet' (FORMAT parquet)"),
    ("ATTACH 'kray:///w.duckdb' AS w", "ATTACH '/data/w.duckdb' AS w"),
    ("SELECT 'kray:///a.csv' AS uri, concat('kray:///', 'x')",
     "SELECT 'kray:///a.csv' AS uri, concat('kray:///', 'x')"),
    ("INSERT INTO uris VALUES ('kray:///a.csv')", "INSERT INTO uris VALUES ('kray:///a.csv')"),
    ("-- FROM 'kray:///c.csv'\nSELECT 1", "-- FROM 'kray:///c.csv'\nSELECT 1"),
    ("SELECT * FROM 'kray:///a/*.parquet'", "SELECT * FROM 'kray:///a/*.parquet'"),
    ("SELECT * FROM 'kray:///../etc/passwd'", "SELECT * FROM 'kray:///../etc/passwd'"),
])
def test_rewrite_only_touches_file_locations(sql: str, expected: str) -> None:
    assert rewrite_storage_literals(sql, fake_path) == expected


def test_local_reads_and_writes_from_sql(runner: TaskRunner) -> None:
    stored = query(runner, MAKE, fetchType="STORE")["uri"]
    out = query(runner, f"""
        COPY (SELECT k, count(*) AS n FROM read_parquet('{stored}') GROUP BY k)
          TO 'kray:///company/team/reports/by_k.parquet' (FORMAT parquet);
        SELECT count(*) AS c, sum(id) AS s, sum(k) AS sk FROM '{stored}'
        """, fetchType="FETCH_ONE")
    assert tuple(out["row"].values()) == SUMS
    report = "kray:///company/team/reports/by_k.parquet"
    assert report in runner.storage.list("company/team/reports")
    out = query(runner, f"SELECT sum(n) AS n FROM '{report}'", fetchType="FETCH_ONE")
    assert out["row"] == {"n": ROWS}


def test_paths_cannot_leave_the_storage_root(runner: TaskRunner, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n")
    for uri in ("kray:///../secret.csv", "kray:////etc/hostname", "kray:///a/../../secret.csv"):
        result = runner.run({"id": "q", "type": QUERY, "sql": f"SELECT * FROM read_csv('{uri}')",
                             "fetchType": "FETCH"})
        assert result.state == "FAILED", uri
        assert "invalid storage path" in (result.error or ""), result.error
        assert "Traceback" not in (result.error or "")


def test_errors_name_storage_files_by_uri(runner: TaskRunner) -> None:
    result = runner.run({"id": "q", "type": QUERY, "fetchType": "FETCH",
                         "sql": "SELECT * FROM read_csv('kray:///company/none.csv')"})
    assert result.state == "FAILED" and "kray:///company/none.csv" in (result.error or "")
    assert str(runner.base_dir) not in (result.error or "")


# -- the filesystem, on every backend --------------------------------------------------------

def check_filesystem(storage: InternalStorage) -> None:
    """Write, read back (several threads over one handle), glob, overwrite, list."""
    with duckdb.connect() as con:
        con.execute("SET threads = 4")
        con.register_filesystem(KrayFileSystem(storage))
        con.execute(f"COPY ({MAKE}) TO 'kray:///out/part-1.parquet' (ROW_GROUP_SIZE 20000)")
        con.execute("COPY (SELECT 1 AS id, 1 AS k, 'x' AS name) TO 'kray:///out/part-2.parquet'")
        for _ in range(8):  # a shared file position garbles about every other scan
            got = con.execute("SELECT count(*), sum(id), sum(k) "
                              "FROM read_parquet('kray:///out/part-1.parquet')").fetchone()
            assert got == SUMS
        got = con.execute("SELECT count(*) FROM 'kray:///out/*.parquet'").fetchone()
        assert got == (ROWS + 1,)
        # Overwriting an existing file (DuckDB writes aside, then moves it over).
        con.execute("COPY (SELECT 2 AS id) TO 'kray:///out/part-2.parquet'")
        assert con.execute("SELECT id FROM 'kray:///out/part-2.parquet'").fetchall() == [(2,)]
        with pytest.raises(duckdb.Error, match="invalid storage path"):
            con.execute("SELECT * FROM read_csv('kray:///../x.csv')").fetchall()
    assert storage.list("out") == ["kray:///out/part-1.parquet", "kray:///out/part-2.parquet"]


def test_filesystem_local(tmp_path: Path) -> None:
    check_filesystem(InternalStorage(str(tmp_path / "storage")))


def test_filesystem_memory(memory_storage: InternalStorage) -> None:
    check_filesystem(memory_storage)


def test_filesystem_s3(s3_storage: InternalStorage) -> None:
    check_filesystem(s3_storage)


def test_tasks_on_s3_storage(runner: TaskRunner, s3_storage: InternalStorage) -> None:
    runner.storage = s3_storage
    prices = s3_storage.put("inputs/prices.csv", b"item,price\napple,2\npear,3\n")
    stored = query(runner, "SELECT * FROM (VALUES ('apple', 3), ('pear', 1)) t(item, qty)",
                   fetchType="STORE")
    assert stored["size"] == 2 and s3_storage.exists(stored["uri"])
    out = query(runner, f"""
        SELECT sum(o.qty * p.price) AS total
        FROM read_parquet('{stored["uri"]}') o JOIN read_csv('prices.csv') p USING (item)
        """, inputFiles={"prices.csv": prices}, fetchType="FETCH_ONE")
    assert out["row"] == {"total": 9}
    made = query(runner, "CREATE TABLE t AS SELECT 5 AS v; COPY t TO '{{ outputFiles.v }}'",
                 outputFiles=["v"], outputDbFile=True)
    assert s3_storage.read(made["outputFiles"]["v"]) == b"v\n5\n"
    out = query(runner, "SELECT v FROM t", databaseUri=made["databaseUri"],
                fetchType="FETCH_ONE")
    assert out["row"] == {"v": 5}
