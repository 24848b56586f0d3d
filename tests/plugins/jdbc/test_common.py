"""The pieces the SQL tasks share: SQL text handling, JSON-safe values, URL parsing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from kray.errors import TaskError
from kray.plugins.jdbc.mysql import Query as MySqlQuery
from kray.plugins.jdbc.postgresql import Query as PgQuery
from kray.plugins.jdbc.results import iso_duration, json_safe
from kray.plugins.jdbc.sqltext import first_keyword, has_placeholders, split_statements, tokenize
from kray.registry import PluginRegistry


@pytest.mark.parametrize("dialect, sql, expected", [
    ("postgres", "SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("postgres", "SELECT 'a;b'; SELECT \"x;y\" FROM t", ["SELECT 'a;b'", 'SELECT "x;y" FROM t']),
    ("postgres", "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2",
     ["DO $body$ BEGIN PERFORM 1; END $body$", "SELECT 2"]),
    ("postgres", "SELECT E'it\\'s;' ; /* a; /* nested; */ b; */ SELECT 3 -- c;\n",
     ["SELECT E'it\\'s;'", "/* a; /* nested; */ b; */ SELECT 3 -- c;"]),
    ("postgres", "SELECT $1; SELECT 'it''s;'", ["SELECT $1", "SELECT 'it''s;'"]),
    ("mysql", "SELECT 'it\\'s;'; SELECT `a;b` # note;\n; SELECT \"q;\"",
     ["SELECT 'it\\'s;'", "SELECT `a;b` # note;", 'SELECT "q;"']),
    ("postgres", " ; -- only a comment\n ;", []),
])
def test_split_statements(dialect: str, sql: str, expected: list[str]) -> None:
    assert split_statements(sql, dialect) == expected  # type: ignore[arg-type]


def test_tokens_cover_the_text() -> None:
    sql = "SELECT 'x' /* c */, $t$ y $t$, \"z\" -- end\n; E'\\''"
    assert "".join(t.text for t in tokenize(sql)) == sql


def test_first_keyword_and_placeholders() -> None:
    assert first_keyword("  /* hi */ (WITH x AS (SELECT 1) SELECT * FROM x)") == "WITH"
    assert first_keyword("-- nothing") == ""
    assert has_placeholders("SELECT %(a)s, %s")
    assert not has_placeholders("SELECT 5 % 2, '%(a)s' -- %s")


def test_json_safe() -> None:
    value = {"d": date(2024, 1, 2), "ts": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
             "t": time(1, 2), "dec": Decimal("12.50"), "wide": Decimal("1234567890.123456789"),
             "bytes": b"\x00\x01", "id": uuid.UUID(int=1), "nan": float("nan"),
             "big": 2**70, "neg": -(2**63), "list": (1, {2: [Decimal("NaN")]}),
             "span": timedelta(days=1, seconds=3661, microseconds=500000)}
    safe = json_safe(value)
    assert safe == {"d": "2024-01-02", "ts": "2024-01-02T03:04:05+00:00", "t": "01:02:00",
                    "dec": 12.5, "wide": "1234567890.123456789", "bytes": "AAE=",
                    "id": "00000000-0000-0000-0000-000000000001", "nan": None,
                    "big": str(2**70), "neg": -(2**63), "list": [1, {"2": [None]}],
                    "span": "P1DT1H1M1.5S"}
    json.dumps(safe, allow_nan=False)


@pytest.mark.parametrize("delta, text", [
    (timedelta(0), "PT0S"), (timedelta(days=2), "P2D"), (timedelta(minutes=-90), "-PT1H30M"),
    (timedelta(seconds=0.25), "PT0.25S"),
])
def test_iso_duration(delta: timedelta, text: str) -> None:
    assert iso_duration(delta) == text


def pg_target(url: str, username: str | None = None, password: str | None = None):
    return PgQuery(id="q", type="x", url=url, sql="").parse_url(url, username, password)


def test_postgres_urls() -> None:
    t = pg_target("jdbc:postgresql://db.example:6543/sales?user=etl&password=p%40ss"
                  "&ssl=true&currentSchema=mart&ApplicationName=kray&loginTimeout=5")
    assert t.kwargs == {"host": "db.example", "port": 6543, "dbname": "sales", "user": "etl",
                        "password": "p@ss", "sslmode": "require",
                        "options": "-c search_path=mart", "application_name": "kray",
                        "connect_timeout": 10}
    assert t.secrets == ["p@ss"] and t.dropped == ["loginTimeout"]
    assert t.display == "postgresql://db.example:6543/sales as etl"
    assert "p@ss" not in t.display
    t = pg_target("postgresql://u:secret@h/db", username="other", password="given")
    assert (t.kwargs["user"], t.kwargs["password"]) == ("other", "given")
    assert pg_target("host=h dbname=d user=u").kwargs["dbname"] == "d"
    with pytest.raises(TaskError, match="jdbc:postgresql://"):
        pg_target("mysql://h/db")


def test_mysql_urls() -> None:
    url = "jdbc:mariadb://u:p%3Aw@db.example/shop?connectTimeout=3000&useSSL=false"
    t = MySqlQuery(id="q", type="x", url=url, sql="").parse_url(url, None, None)
    assert t.kwargs == {"host": "db.example", "port": 3306, "database": "shop", "user": "u",
                        "password": "p:w", "connect_timeout": 3}
    assert t.secrets == ["p:w"] and t.dropped == ["useSSL"]
    with pytest.raises(TaskError):
        MySqlQuery(id="q", type="x", url="x", sql="").parse_url("postgresql://h/db", None, None)


def test_kestra_names_resolve() -> None:
    registry = PluginRegistry.default()
    for name in ("io.kestra.plugin.jdbc.duckdb.Query", "io.kestra.plugin.jdbc.duckdb.Queries",
                 "io.kestra.plugin.jdbc.postgresql.Query",
                 "io.kestra.plugin.jdbc.postgresql.CopyIn",
                 "io.kestra.plugin.jdbc.mysql.Query", "kray.jdbc.mysql.Load"):
        assert registry.resolve(name).type_name.startswith("kray.")
