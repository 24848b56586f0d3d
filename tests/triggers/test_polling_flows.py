"""Polling triggers end to end: a deployed flow, its trigger actor, the executor. A file
dropped in a folder starts exactly one execution and is moved; the PostgreSQL trigger starts
executions with ``trigger.rows`` while its query returns rows, none after; the HTTP trigger
fires only while its condition holds."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.triggers.test_polling import PG_URL, table  # noqa: F401 - the fixture
from tests.triggers.helpers import deployed, search, wait_for

pytestmark = pytest.mark.ray

NS = "e2e.polling"


def flow(flow_id: str, trigger: str) -> str:
    return f"""id: {flow_id}
namespace: {NS}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger | json }}}}"
triggers:
{trigger}"""


def executions(ray: Any, executor: Any, flow_id: str) -> list[dict]:
    return search(ray, executor, NS, flow_id)


def test_a_dropped_file_starts_one_execution_and_is_moved(ray_session, executor,
                                                          tmp_path: Path) -> None:
    ray = ray_session
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    fid = f"files_{uuid.uuid4().hex[:6]}"
    trigger = f"""  - id: watch
    type: io.kestra.plugin.fs.local.Trigger
    from: {inbox}
    action: MOVE
    moveDirectory: {archive}
    interval: PT0.2S
"""
    source = flow(fid, trigger).replace("triggers:", """  - id: content
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(trigger.uri) }}"
triggers:""", 1)
    with deployed(ray, executor, NS, fid, source):
        (inbox / "orders.csv").write_text("id,amount\n1,10\n")
        docs = wait_for(lambda: executions(ray, executor, fid), what="an execution")
        wait_for(lambda: (archive / "orders.csv").exists(), what="the file to be moved")
        assert not (inbox / "orders.csv").exists()
        time.sleep(1.0)  # five more polls: the moved file starts nothing more
        docs = executions(ray, executor, fid)
        assert len(docs) == 1
        seen = docs[0]["trigger"]
        assert seen["name"] == "orders.csv" and seen["size"] == 15
        assert seen["movedTo"] == str(archive / "orders.csv")
        assert seen["files"][0]["path"] == str(inbox / "orders.csv")
        # A copy in internal storage: the execution reads it although the file was moved.
        assert seen["uri"].startswith("kray://")
        done = wait_for(lambda: [d for d in executions(ray, executor, fid)
                                 if d["state"] == "SUCCESS"], what="the execution to end")
        content = next(r for r in done[0]["taskRuns"] if r["taskId"] == "content")
        assert content["outputs"]["value"] == "id,amount\n1,10\n"


def test_sql_trigger_starts_executions_with_its_rows(ray_session, executor,
                                                     table: tuple[Any, str]) -> None:  # noqa: F811
    ray = ray_session
    conn, name = table
    conn.execute(f"INSERT INTO {name} VALUES (1, 9.99, '2024-05-01'), (2, 5, '2024-05-02')")
    fid = f"sql_{uuid.uuid4().hex[:6]}"
    trigger = f"""  - id: watch
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: "{PG_URL}"
    sql: SELECT id, amount, day FROM {name} ORDER BY id
    fetchType: FETCH
    interval: PT0.2S
"""
    with deployed(ray, executor, NS, fid, flow(fid, trigger)):
        docs = wait_for(lambda: executions(ray, executor, fid), what="an execution")
        assert docs[0]["trigger"]["rows"] == [
            {"id": 1, "amount": 9.99, "day": "2024-05-01"},
            {"id": 2, "amount": 5.0, "day": "2024-05-02"}]
        assert docs[0]["trigger"]["size"] == 2
        conn.execute(f"DELETE FROM {name}")
        time.sleep(0.6)  # a poll that may have started before the delete lands
        count = len(executions(ray, executor, fid))
        time.sleep(1.0)  # five polls without rows: no execution
        assert len(executions(ray, executor, fid)) == count


class _Switch(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = {"code": 503, "body": b"{\"ready\": false}"}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(self.state["code"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.state["body"])))
        self.end_headers()
        self.wfile.write(self.state["body"])


@pytest.fixture
def switch() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Switch)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/status"
    httpd.shutdown()
    httpd.server_close()


def test_http_trigger_fires_while_its_condition_holds(ray_session, executor,
                                                      switch: str) -> None:
    ray = ray_session
    fid = f"http_{uuid.uuid4().hex[:6]}"
    trigger = f"""  - id: watch
    type: io.kestra.plugin.core.http.Trigger
    uri: {switch}
    responseCondition: "{{{{ response.statusCode == 200 and json(response.body).ready }}}}"
    interval: PT0.2S
"""
    with deployed(ray, executor, NS, fid, flow(fid, trigger)):
        time.sleep(0.8)
        assert executions(ray, executor, fid) == []  # 503: the condition does not hold
        _Switch.state.update(code=200, body=json.dumps({"ready": True}).encode())
        docs = wait_for(lambda: executions(ray, executor, fid), what="an execution")
        assert docs[0]["trigger"]["body"] == {"ready": True}
        assert docs[0]["trigger"]["statusCode"] == 200
        _Switch.state.update(code=503, body=b"{\"ready\": false}")
        time.sleep(0.6)
        count = len(executions(ray, executor, fid))
        time.sleep(1.0)
        assert len(executions(ray, executor, fid)) == count
        ids = [d["id"] for d in executions(ray, executor, fid)]
        assert len(ids) == len(set(ids))
