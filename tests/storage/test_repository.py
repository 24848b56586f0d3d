from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kray.engine.execution import Execution, TaskRun, task_run_id
from kray.engine.state import State, StateValue
from kray.storage import migrations
from kray.storage.repository import (
    DuplicateTriggerKey,
    InvalidQuery,
    Repository,
    RepositoryError,
    dumps,
    loads,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def log(eid: str, message: str, level: str = "INFO", **extra: Any) -> dict[str, Any]:
    return {"executionId": eid, "taskRunId": extra.pop("taskRunId", "tr1"), "taskId": "t1",
            "attempt": 1, "level": level, "timestamp": extra.pop("timestamp", T0.isoformat()),
            "message": message, **extra}


# -- migrations ------------------------------------------------------------------------------


def test_migrations_are_idempotent_and_keep_data(tmp_path: Path, make_execution: Any) -> None:
    path = tmp_path / "nested" / "dir" / "kray.duckdb"
    repo = Repository(path)
    repo.write_batch([make_execution("e1")], [log("e1", "hello")])
    repo.save_flow("ns", "f", "id: f")
    repo.close()
    for _ in range(2):
        with Repository(path) as again:
            assert again.get_execution("e1")["id"] == "e1"
            assert again.get_flow("ns", "f")["source"] == "id: f"
            assert [r["message"] for r in again.logs("e1")] == ["hello"]
    con = duckdb.connect(str(path))
    try:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    finally:
        con.close()
    assert versions == [(v,) for v in range(1, len(migrations.MIGRATIONS) + 1)]


def test_new_migration_applies_once(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        shipped = len(migrations.MIGRATIONS)
        scripts = migrations.MIGRATIONS + ["CREATE TABLE extra (x INTEGER)"]
        assert migrations.migrate(con) == list(range(1, shipped + 1))
        assert migrations.migrate(con, scripts) == [shipped + 1]
        assert migrations.migrate(con, scripts) == []
        assert migrations.current_version(con) == shipped + 1
    finally:
        con.close()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        shipped = len(migrations.MIGRATIONS)
        broken = migrations.MIGRATIONS + ["CREATE TABLE half (x INTEGER); SELECT nope FROM nowhere"]
        with pytest.raises(migrations.SchemaError, match=f"migration {shipped + 1} failed"):
            migrations.migrate(con, broken)
        assert migrations.current_version(con) == shipped
        assert con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_name = 'half'").fetchone() == (0,)
    finally:
        con.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    con = duckdb.connect(str(path))
    migrations.migrate(con, migrations.MIGRATIONS + ["SELECT 1"])
    con.close()
    with pytest.raises(migrations.SchemaError, match="newer than this kray"):
        Repository(path)


# -- write_batch -----------------------------------------------------------------------------


def test_execution_round_trip_from_the_engine_model(repo: Repository) -> None:
    ex = Execution(id="ex1", namespace="company.team", flow_id="etl", flow_revision=2,
                   state=StateValue.new(T0).to(State.RUNNING, T0), labels={"env": "prod"})
    ex.add(TaskRun(id=task_run_id("ex1", None, "t1", None, None), execution_id="ex1",
                   task_id="t1", state=StateValue.new(T0), outputs={"n": 1.5, "s": "é"}))
    repo.write_batch([ex.to_dict()])
    stored = repo.get_execution("ex1")
    assert stored == ex.to_dict()
    assert Execution.from_dict(stored).to_dict() == ex.to_dict()
    assert repo.get_execution("missing") is None


def test_upsert_latest_wins(repo: Repository, make_execution: Any) -> None:
    repo.write_batch([make_execution("e1", state="CREATED"), make_execution("e2")])
    repo.write_batch([make_execution("e1", state="RUNNING"),
                      make_execution("e1", state="SUCCESS", end="2024-01-01T00:05:00+00:00")])
    assert repo.get_execution("e1")["state"] == "SUCCESS"
    assert repo.get_execution("e2")["state"] == "RUNNING"
    _, total = repo.search_executions()
    assert total == 2
    repo.write_batch([make_execution("e1", state="FAILED")])
    assert repo.get_execution("e1")["state"] == "FAILED"
    assert repo.search_executions()[1] == 2


def test_batch_is_one_transaction(repo: Repository, make_execution: Any) -> None:
    repo.write_batch([make_execution("keep", state="CREATED")], [log("keep", "first")])
    bad_batches: list[dict[str, Any]] = [
        {"executions": [make_execution("keep", state="RUNNING"),
                        make_execution("bad", start="not a timestamp")]},
        {"executions": [make_execution("keep", state="RUNNING")],
         "logs": [log("keep", "x"), log("keep", "y", timestamp="garbage")]},
        {"executions": [make_execution("keep", state="RUNNING")],
         "metrics": [{"executionId": "keep", "name": "m", "value": "not a number"}]},
        {"executions": [make_execution("keep", state="RUNNING"), {"namespace": "no id"}]},
        {"logs": [log("keep", "x"), log("keep", "y", level="LOUD")]},
        {"executions": [make_execution("keep", state="RUNNING")],
         "logs": [{"message": "no execution id"}]},
    ]
    for batch in bad_batches:
        with pytest.raises(RepositoryError):
            repo.write_batch(**batch)
        assert repo.get_execution("keep")["state"] == "CREATED"
        assert repo.get_execution("bad") is None
        assert [r["message"] for r in repo.logs("keep")] == ["first"]
        assert repo.metrics("keep") == []
    # the repository still works, and seq continues without a gap from failed batches
    repo.write_batch(logs=[log("keep", "second")])
    assert [r["seq"] for r in repo.logs("keep")] == [1, 2]


def test_empty_batch_is_a_no_op(repo: Repository) -> None:
    repo.write_batch()
    assert repo.load_executions() == []


def test_trigger_key_is_unique_and_kept(repo: Repository, make_execution: Any) -> None:
    repo.write_batch([make_execution("e1", triggerKey="sched:flow:2024-01-01T00:00")])
    assert repo.find_by_trigger_key("sched:flow:2024-01-01T00:00")["id"] == "e1"
    assert repo.find_by_trigger_key("other") is None
    # a later version without the key keeps it
    repo.write_batch([make_execution("e1", state="SUCCESS")])
    assert repo.find_by_trigger_key("sched:flow:2024-01-01T00:00")["state"] == "SUCCESS"
    # the same key on the same execution is fine
    repo.write_batch([make_execution("e1", state="SUCCESS",
                                     triggerKey="sched:flow:2024-01-01T00:00")])
    # another execution with the key is refused, and nothing of its batch is written
    with pytest.raises(DuplicateTriggerKey) as info:
        repo.write_batch([make_execution("e2"),
                          make_execution("e3", triggerKey="sched:flow:2024-01-01T00:00")],
                         [log("e2", "x")])
    assert info.value.existing_id == "e1"
    assert repo.get_execution("e2") is None and repo.logs("e2") == []
    with pytest.raises(DuplicateTriggerKey):
        repo.write_batch([make_execution("e4", triggerKey="k2"),
                          make_execution("e5", triggerKey="k2")])
    assert repo.get_execution("e4") is None


def test_load_executions_non_terminal(repo: Repository, make_execution: Any) -> None:
    states = ["CREATED", "QUEUED", "RUNNING", "PAUSED", "RESTARTED", "KILLING", "RETRYING",
              "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED"]
    repo.write_batch([make_execution(f"e-{s}", state=s,
                                     start=(T0 + timedelta(minutes=i)).isoformat())
                      for i, s in enumerate(states)])
    assert len(repo.load_executions()) == 14
    live = repo.load_executions(non_terminal=True)
    assert [e["state"] for e in live] == states[:7]


def test_logs_seq_order_and_filters(repo: Repository, make_execution: Any) -> None:
    repo.write_batch(logs=[log("e1", "a", "DEBUG"), log("e1", "b", "INFO"),
                           log("e2", "other", "ERROR")])
    repo.write_batch(logs=[log("e1", "c", "warning"), log("e1", "d", "ERROR", taskRunId="tr2"),
                           log("e1", "e", "TRACE")])
    lines = repo.logs("e1")
    assert [r["message"] for r in lines] == ["a", "b", "c", "d", "e"]
    seqs = [r["seq"] for r in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert lines[2]["level"] == "WARN"
    assert lines[0]["timestamp"] == "2024-01-01T00:00:00+00:00"
    assert [r["message"] for r in repo.logs("e1", after_seq=lines[1]["seq"])] == ["c", "d", "e"]
    assert [r["message"] for r in repo.logs("e1", min_level="WARN")] == ["c", "d"]
    assert [r["message"] for r in repo.logs("e1", min_level="info")] == ["b", "c", "d"]
    assert [r["message"] for r in repo.logs("e1", task_run_id="tr2")] == ["d"]
    assert [r["message"] for r in repo.logs("e1", limit=2)] == ["a", "b"]
    assert repo.logs("nobody") == []
    with pytest.raises(RepositoryError, match="unknown log level"):
        repo.logs("e1", min_level="LOUD")


def test_seq_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    with Repository(path) as repo:
        repo.write_batch(logs=[log("e1", "a"), log("e1", "b")])
    with Repository(path) as repo:
        repo.write_batch(logs=[log("e1", "c")])
        assert [r["seq"] for r in repo.logs("e1")] == [1, 2, 3]


def test_log_timestamps_accept_datetimes_and_offsets(repo: Repository) -> None:
    repo.write_batch(logs=[
        log("e1", "aware", timestamp=datetime(2024, 5, 1, 12, tzinfo=UTC)),
        log("e1", "naive means utc", timestamp=datetime(2024, 5, 1, 12)),
        log("e1", "offset", timestamp="2024-05-01T14:00:00+02:00"),
    ])
    assert {r["timestamp"] for r in repo.logs("e1")} == {"2024-05-01T12:00:00+00:00"}


def test_metrics(repo: Repository) -> None:
    repo.write_batch(metrics=[
        {"executionId": "e1", "taskRunId": "tr1", "taskId": "t1", "name": "rows",
         "type": "counter", "value": 10, "tags": {"table": "a"}, "timestamp": T0},
        {"executionId": "e1", "taskRunId": "tr1", "taskId": "t1", "name": "duration",
         "type": "timer", "value": 1.5, "tags": {}, "timestamp": T0 + timedelta(seconds=1)},
    ])
    assert repo.metrics("e1") == [
        {"executionId": "e1", "taskRunId": "tr1", "taskId": "t1", "name": "rows",
         "type": "counter", "value": 10.0, "tags": {"table": "a"},
         "timestamp": "2024-01-01T00:00:00+00:00"},
        {"executionId": "e1", "taskRunId": "tr1", "taskId": "t1", "name": "duration",
         "type": "timer", "value": 1.5, "tags": {}, "timestamp": "2024-01-01T00:00:01+00:00"},
    ]


# -- search ----------------------------------------------------------------------------------


@pytest.fixture
def searchable(repo: Repository, make_execution: Any) -> Repository:
    docs = []
    for i in range(30):
        docs.append(make_execution(
            f"e{i:02d}", namespace="company.team" if i % 3 else "company.team.sub" if i % 2
            else "other", flow_id=f"flow{i % 2}",
            state=["SUCCESS", "FAILED", "RUNNING"][i % 3],
            start=(T0 + timedelta(hours=i)).isoformat(),
            end=(T0 + timedelta(hours=i, minutes=30 - i)).isoformat() if i % 3 != 2 else None,
            labels={"env": "prod" if i < 10 else "dev", "team/name": f"t{i % 4}"}))
    repo.write_batch(docs)
    return repo


def ids(page: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in page]


def test_search_defaults_newest_first(searchable: Repository) -> None:
    page, total = searchable.search_executions()
    assert total == 30
    assert ids(page) == [f"e{i:02d}" for i in range(29, -1, -1)]


def test_search_paging(searchable: Repository) -> None:
    first, total = searchable.search_executions(limit=7, sort="start_date:asc")
    second, total2 = searchable.search_executions(limit=7, offset=7, sort="start_date:asc")
    last, _ = searchable.search_executions(limit=7, offset=28, sort="start_date:asc")
    assert total == total2 == 30
    assert ids(first) == [f"e{i:02d}" for i in range(7)]
    assert ids(second) == [f"e{i:02d}" for i in range(7, 14)]
    assert ids(last) == ["e28", "e29"]
    assert searchable.search_executions(offset=100) == ([], 30)


def test_search_filters(searchable: Repository) -> None:
    page, total = searchable.search_executions(namespace="company.team", limit=100)
    assert total == 25  # the namespace and its child company.team.sub, not "other"
    assert {e["namespace"] for e in page} == {"company.team", "company.team.sub"}
    _, total = searchable.search_executions(namespace="company.team.sub")
    assert total == 5
    _, total = searchable.search_executions(namespace="company.te")
    assert total == 0  # a namespace, not a string prefix
    page, total = searchable.search_executions(flow_id="flow1", states=["FAILED", "RUNNING"],
                                               limit=100)
    assert total == len(page) and all(e["flowId"] == "flow1" for e in page)
    assert {e["state"] for e in page} <= {"FAILED", "RUNNING"}
    page, total = searchable.search_executions(labels={"env": "prod"}, limit=100)
    assert total == 10
    page, total = searchable.search_executions(labels={"env": "dev", "team/name": "t1"},
                                               limit=100)
    assert ids(page) == sorted({f"e{i:02d}" for i in range(10, 30) if i % 4 == 1},
                               reverse=True)
    page, total = searchable.search_executions(start_after=T0 + timedelta(hours=5),
                                               start_before=T0 + timedelta(hours=8))
    assert ids(page) == ["e08", "e07", "e06", "e05"]  # both bounds inclusive


def test_search_filter_values_are_data_not_sql(searchable: Repository) -> None:
    for hostile in ("x' OR '1'='1", "$.env", "/env", "a\"b", "~1"):
        assert searchable.search_executions(namespace=hostile) == ([], 0)
        assert searchable.search_executions(labels={hostile: "prod"}) == ([], 0)
        assert searchable.search_executions(labels={"env": hostile}) == ([], 0)
    assert searchable.search_executions()[1] == 30


def test_search_sort(searchable: Repository) -> None:
    page, _ = searchable.search_executions(sort="end_date:desc", limit=100)
    ends = [e["endDate"] for e in page]
    assert ends[:20] == sorted(ends[:20], reverse=True) and ends[20:] == [None] * 10
    page, _ = searchable.search_executions(sort="state", limit=100)
    assert [e["state"] for e in page] == sorted(e["state"] for e in page)
    page, _ = searchable.search_executions(sort="flowId:desc", limit=100)
    assert page[0]["flowId"] == "flow1"
    for bad in ("data:asc", "start_date; DROP TABLE executions", "start_date:sideways", ""):
        with pytest.raises(InvalidQuery):
            searchable.search_executions(sort=bad)
    with pytest.raises(InvalidQuery):
        searchable.search_executions(limit=-1)
    assert searchable.search_executions()[1] == 30


# -- flows -----------------------------------------------------------------------------------


def test_flow_revisions(repo: Repository) -> None:
    assert repo.save_flow("ns", "f", "id: f\n") == 1
    assert repo.save_flow("ns", "f", "id: f\n") == 1  # same source: same revision
    assert repo.save_flow("ns", "f", "id: f\ntasks: []\n") == 2
    assert repo.save_flow("ns", "g", "id: g\n") == 1
    assert repo.get_flow("ns", "f")["revision"] == 2
    assert repo.get_flow("ns", "f", 1)["source"] == "id: f\n"
    assert repo.get_flow("ns", "f", 9) is None
    assert repo.get_flow("ns", "nope") is None
    flow = repo.get_flow("ns", "f")
    assert set(flow) == {"namespace", "id", "revision", "source", "deleted", "updated"}
    assert datetime.fromisoformat(flow["updated"]).tzinfo is not None
    assert [r["revision"] for r in repo.flow_revisions("ns", "f")] == [1, 2]


def test_delete_and_list_flows(repo: Repository) -> None:
    repo.save_flow("company", "a", "1")
    repo.save_flow("company", "a", "2")
    repo.save_flow("company.team", "b", "1")
    repo.save_flow("other", "c", "1")
    assert [(f["namespace"], f["id"], f["revision"]) for f in repo.list_flows()] == [
        ("company", "a", 2), ("company.team", "b", 1), ("other", "c", 1)]
    assert [f["id"] for f in repo.list_flows("company")] == ["a", "b"]
    assert [f["id"] for f in repo.list_flows("company.team")] == ["b"]
    assert repo.delete_flow("company", "a") is True
    assert repo.delete_flow("company", "a") is False
    assert repo.delete_flow("company", "missing") is False
    assert repo.get_flow("company", "a") is None
    assert [f["id"] for f in repo.list_flows()] == ["b", "c"]
    revisions = repo.flow_revisions("company", "a")
    assert [(r["revision"], r["deleted"]) for r in revisions] == [(1, False), (2, False),
                                                                  (3, True)]
    # saving again after a delete revives the flow under a new revision, even if unchanged
    assert repo.save_flow("company", "a", "2") == 4
    assert repo.get_flow("company", "a")["revision"] == 4
    assert [f["id"] for f in repo.list_flows("company")] == ["a", "b"]


# -- JSON helpers ----------------------------------------------------------------------------


def test_dumps_handles_what_executions_carry() -> None:
    value = {"when": T0, "nan": float("nan"), "big": 2**70, "state": State.RUNNING, 1: "int key"}
    assert loads(dumps(value)) == {"when": "2024-01-01T00:00:00+00:00", "nan": None,
                                   "big": 2**70, "state": "RUNNING", "1": "int key"}
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_dumps_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    from kray.storage import repository

    monkeypatch.setattr(repository, "orjson", None)
    value = {"when": T0, "nan": float("inf"), "nested": [{"x": float("nan")}], "é": "ü"}
    assert repository.loads(repository.dumps(value)) == {
        "when": "2024-01-01T00:00:00+00:00", "nan": None, "nested": [{"x": None}], "é": "ü"}


def test_bad_execution_document_is_rejected(repo: Repository, make_execution: Any) -> None:
    with pytest.raises(RepositoryError, match="nothing written"):
        repo.write_batch([make_execution("e1", outputs={"x": object()})])
    assert repo.get_execution("e1") is None


def test_a_second_process_cannot_open_the_repository(tmp_path: Path) -> None:
    path = tmp_path / "owned.duckdb"
    Repository(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        with pytest.raises(RepositoryError, match="cannot open the repository"):
            Repository(path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    with Repository(path) as repo:  # free again once the owner is gone
        assert repo.load_executions() == []
