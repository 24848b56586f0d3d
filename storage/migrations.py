"""The repository's schema, as an append-only list of versioned migrations.

Each entry is one SQL script; the repository applies the ones it has not applied yet, in order,
each in its own transaction, and records the version in ``schema_version``. To change the
schema, append a script: never edit one that has shipped, a database in the field already ran it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from kray.errors import KrayError

MIGRATIONS: list[str] = [
    # 1: flows, executions, logs, metrics, kv
    """
    CREATE TABLE flows (
        namespace VARCHAR NOT NULL,
        id VARCHAR NOT NULL,
        revision INTEGER NOT NULL,
        source VARCHAR NOT NULL,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        updated TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, id, revision)
    );
    CREATE TABLE executions (
        id VARCHAR PRIMARY KEY,
        namespace VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        flow_revision INTEGER,
        state VARCHAR NOT NULL,
        start_date TIMESTAMPTZ,
        end_date TIMESTAMPTZ,
        labels JSON,
        parent_id VARCHAR,
        original_id VARCHAR,
        trigger_key VARCHAR UNIQUE,
        data JSON NOT NULL
    );
    CREATE TABLE logs (
        execution_id VARCHAR NOT NULL,
        task_run_id VARCHAR,
        task_id VARCHAR,
        attempt INTEGER,
        level VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        message VARCHAR,
        seq BIGINT NOT NULL
    );
    CREATE TABLE metrics (
        execution_id VARCHAR NOT NULL,
        task_run_id VARCHAR,
        task_id VARCHAR,
        name VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        value DOUBLE NOT NULL,
        tags JSON,
        ts TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE kv (
        namespace VARCHAR NOT NULL,
        key VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        value JSON NOT NULL,
        expires_at TIMESTAMPTZ,
        updated TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, key)
    );
    """,
    # 2: trigger state (kray.storage.triggers): a schedule's watermark, enabled or not, the
    # last execution and error, and per-type progress (preconditions, backfill) as JSON
    """
    CREATE TABLE triggers (
        namespace VARCHAR NOT NULL,
        flow_id VARCHAR NOT NULL,
        trigger_id VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        watermark TIMESTAMPTZ,
        next_tick TIMESTAMPTZ,
        last_execution_id VARCHAR,
        last_fired TIMESTAMPTZ,
        last_error VARCHAR,
        data JSON,
        updated TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, flow_id, trigger_id)
    );
    """,
]


class SchemaError(KrayError):
    """The repository's schema cannot be brought to the version this kray expects."""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL)")
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, migrations: list[str] | None = None) -> list[int]:
    """Apply the migrations this database lacks; return the versions applied (often none).

    A database newer than this code is refused rather than used: an older kray must not
    write into a schema it does not understand.
    """
    scripts = MIGRATIONS if migrations is None else migrations
    version = current_version(con)
    if version > len(scripts):
        raise SchemaError(f"the repository's schema is at version {version}, newer than this "
                          f"kray knows ({len(scripts)}); upgrade kray")
    applied = []
    for number, script in enumerate(scripts[version:], start=version + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(script)
            con.execute("INSERT INTO schema_version VALUES (?, ?)",
                        [number, datetime.now(UTC)])
            con.execute("COMMIT")
        except Exception as e:
            con.execute("ROLLBACK")
            raise SchemaError(f"migration {number} failed: {e}") from e
        applied.append(number)
    return applied
