"""Fixtures for the JDBC-style tasks: the machine's PostgreSQL and MariaDB/MySQL.

Each test gets its own table name and the fixture drops it afterwards. A missing server skips
(fails in CI, ``KRAY_REQUIRE_SERVICES=1``). Addresses can be changed with ``KRAY_TEST_PG_URL``
and ``KRAY_TEST_MYSQL_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import skip_or_fail

PG_URL = os.environ.get("KRAY_TEST_PG_URL", "jdbc:postgresql://127.0.0.1:5432/test?user=postgres")
MYSQL_URL = os.environ.get("KRAY_TEST_MYSQL_URL", "jdbc:mysql://127.0.0.1:3306/test?user=root")


def _plain(url: str) -> str:
    return url.removeprefix("jdbc:")


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        import psycopg
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install 'kray[sql]')")
    try:
        psycopg.connect(_plain(PG_URL), connect_timeout=3).close()
    except psycopg.Error as e:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_URL}: {e}")
    return PG_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    try:
        import pymysql
    except ImportError:
        skip_or_fail("pymysql is not installed (pip install 'kray[sql]')")
    from kray.plugins.jdbc.mysql import Query

    target = Query(id="probe", type="x", url=MYSQL_URL, sql="").parse_url(MYSQL_URL, None, None)
    try:
        pymysql.connect(**{**target.kwargs, "connect_timeout": 3}).close()
    except pymysql.Error as e:
        skip_or_fail(f"MySQL/MariaDB is not reachable at {MYSQL_URL}: {e}")
    return MYSQL_URL


def _name() -> str:
    return f"kray_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg(pg_url: str) -> Iterator[Callable[..., Any]]:
    """``pg(sql, *args)`` runs SQL directly (autocommit) and returns the rows, if any;
    ``pg.table`` is a fresh table name, dropped after the test."""
    import psycopg

    conn = psycopg.connect(_plain(pg_url), autocommit=True)

    def run(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        cur = conn.execute(sql, args or None)
        return cur.fetchall() if cur.description else []

    run.table = _name()  # type: ignore[attr-defined]
    yield run
    conn.execute(f"DROP TABLE IF EXISTS {run.table}")  # type: ignore[attr-defined]
    conn.close()


@pytest.fixture
def my(mysql_url: str) -> Iterator[Callable[..., Any]]:
    """``my(sql, *args)`` as ``pg`` above, on MySQL/MariaDB."""
    import pymysql
    from kray.plugins.jdbc.mysql import Query

    target = Query(id="probe", type="x", url=mysql_url, sql="").parse_url(mysql_url, None, None)
    conn = pymysql.connect(autocommit=True, **target.kwargs)

    def run(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            return list(cur.fetchall()) if cur.description else []

    run.table = _name()  # type: ignore[attr-defined]
    yield run
    run(f"DROP TABLE IF EXISTS {run.table}")  # type: ignore[attr-defined]
    conn.close()
