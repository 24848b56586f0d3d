"""Fresh DuckDB connections, without waiting for them.

Opening an in-memory DuckDB database costs tens of milliseconds (DuckDB 2 builds a whole
database instance), a large share of a small task's run time. So each worker process keeps
one spare, unused in-memory database, made in a background thread after a task takes the
previous one. A spare has never run a statement: taking it is the same as opening a new
database, and tasks share nothing. Database files are always opened on the spot.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_spare: duckdb.DuckDBPyConnection | None = None
_refill: threading.Thread | None = None


def connect(database: str | None = None) -> duckdb.DuckDBPyConnection:
    """A new connection to ``database`` (a file path), or to a new in-memory database."""
    import duckdb

    if database is not None:
        return duckdb.connect(database)
    global _spare
    with _lock:
        con, _spare = _spare, None
    if con is None:
        con = duckdb.connect()
    _start_refill()
    return con


def _start_refill() -> None:
    global _refill
    with _lock:
        if _refill is not None and _refill.is_alive():
            return
        # Not a daemon: interpreter exit waits for it (an instant), never kills it mid-open.
        _refill = threading.Thread(target=_make_spare, name="kray-duckdb-spare")
        _refill.start()


def _make_spare() -> None:
    import duckdb

    global _spare
    try:
        con: duckdb.DuckDBPyConnection | None = duckdb.connect()
    except Exception:  # noqa: BLE001 - a spare is an optimisation; the next task opens its own
        return
    with _lock:
        if _spare is None:
            _spare, con = con, None
    if con is not None:
        con.close()


_orphans: list[object] = []


def _forget_in_child() -> None:
    """A forked child has the spare's memory but not DuckDB's threads: never use it there, and
    never free it either (its destructor would wait for threads the child does not have)."""
    global _spare, _refill, _lock
    if _spare is not None:
        _orphans.append(_spare)
    _spare, _refill, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _close_spare() -> None:
    global _spare
    with _lock:
        con, _spare = _spare, None
    if con is not None:
        con.close()
