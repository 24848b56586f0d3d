"""Polling trigger sources on their own (no Ray): HTTP against a server on 127.0.0.1, files
on a local folder and on moto S3, SQL on the machine's PostgreSQL. Each source is driven
the way the trigger actor drives it: open, fetch, ack, position, a new source built from
the position after a "restart"."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kray.storage.internal import InternalStorage

from kray.errors import FlowValidationError
from kray.flow.parse import parse_flow
from kray.registry import PluginRegistry
from kray.triggers.models import parse_trigger
from kray.triggers.sources import Source, SourceError, source_types
from kray.plugins.triggers.files import FileSource
from kray.triggers.sources.polling import PollingSource, iso_us, slot_of
from tests.conftest import skip_or_fail
from tests.s3server import ACCESS_KEY, SECRET_KEY, create_bucket, moto_available, moto_s3_server

HEAD = """id: polled
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
"""
CONTEXT = {"namespace": "company.team", "flow_id": "polled", "trigger_id": "watch"}


def flow_issues(triggers: str) -> list[str]:
    try:
        parse_flow(HEAD + triggers, registry=PluginRegistry.default())
    except FlowValidationError as e:
        return [f"{i.line}:{i.message}" for i in e.issues]
    return []


class _Secrets:
    """``secret()`` for rendering a trigger's properties, as the executor's services give it."""

    def secret(self, name: str) -> str:
        from kray.storage.secrets import SecretStore
        return SecretStore().get(name)


def make_source(yaml_trigger: str, position: dict[str, Any] | None = None,
                context: dict[str, Any] | None = None) -> Source:
    """The source the trigger actor would build for this flow's first trigger: the model
    dumped to JSON, its properties rendered (as the executor does when the actor asks for
    its configuration, ``kray.triggers.realtime``), validated again in the actor."""
    from kray.templating import TemplateEngine
    from kray.triggers.realtime import source_properties

    flow = parse_flow(HEAD + yaml_trigger, registry=PluginRegistry.default())
    model = parse_trigger(flow.triggers[0])
    scope = {"flow": {"id": flow.id, "namespace": flow.namespace}}
    engine = TemplateEngine()
    data = source_properties(model, lambda v: engine.render_value(v, scope, _Secrets()))
    kind = source_types()[model.type]
    return kind.source_class()(kind.model.model_validate(data), position,
                               {**CONTEXT, **(context or {})})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def session(source: Source, *steps: Any) -> list[Any]:
    """Open the source, run each step (an async function of the source), close it."""
    await source.open()
    try:
        return [await step(source) for step in steps]
    finally:
        await source.close()


def fetch(timeout: float = 0.0, max_messages: int = 100) -> Any:
    async def step(source: Source) -> Any:
        return await source.fetch(max_messages, timeout)
    return step


def fetch_ack(timeout: float = 0.0) -> Any:
    async def step(source: Source) -> Any:
        messages = await source.fetch(100, timeout)
        await source.ack(messages)
        return messages
    return step


def frozen(source: Any, at: float) -> Any:
    source.clock = lambda: at
    return source


# -- models ---------------------------------------------------------------------------------

def test_polling_types_are_registered_under_kray_and_kestra_names() -> None:
    for name in ("kray.http.Trigger", "io.kestra.plugin.core.http.Trigger",
                 "io.kestra.plugin.fs.http.Trigger", "kray.fs.Trigger", "kray.file.Trigger",
                 "io.kestra.plugin.fs.local.Trigger", "io.kestra.plugin.aws.s3.Trigger",
                 "kray.jdbc.postgresql.Trigger", "io.kestra.plugin.jdbc.postgresql.Trigger"):
        assert name in source_types(), name


def test_valid_polling_triggers_parse() -> None:
    assert flow_issues("""\
  - id: http
    type: io.kestra.plugin.core.http.Trigger
    uri: https://example.com/api
    responseCondition: "{{ json(response.body).price <= 110 }}"
    interval: PT30S
    stopAfter: [SUCCESS]
  - id: files
    type: io.kestra.plugin.fs.local.Trigger
    from: /data/inbox
    action: MOVE
    moveDirectory: /data/archive
    regExp: ".*\\\\.csv"
  - id: s3
    type: io.kestra.plugin.aws.s3.Trigger
    bucket: my-bucket
    prefix: sub-dir
    action: MOVE
    moveTo: {key: archive}
    accessKeyId: "{{ secret('AWS_KEY') }}"
    secretKeyId: "{{ secret('AWS_SECRET') }}"
    region: eu-central-1
  - id: sql
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: jdbc:postgresql://127.0.0.1:5432/test
    username: postgres
    password: "{{ secret('PG_PASSWORD') }}"
    sql: SELECT * FROM jobs
    fetchType: FETCH
""") == []


@pytest.mark.parametrize(("trigger", "message"), [
    ("type: kray.fs.Trigger\n    from: /data/../etc", "'..' segments are not allowed"),
    ("type: kray.fs.Trigger\n    from: relative/dir", "must be an absolute path"),
    ("type: kray.fs.Trigger\n    from: /in\n    action: MOVE", "needs moveDirectory"),
    ("type: kray.fs.Trigger\n    from: /in\n    action: MOVE\n    moveDirectory: /in/done\n"
     "    recursive: true", "must not be inside the watched folder"),
    ("type: kray.fs.Trigger\n    from: /in\n    action: MOVE\n    moveDirectory: /in",
     "must not be the watched folder"),
    ("type: kray.fs.Trigger\n    from: /in\n    action: MOVE\n    moveDirectory: /a/../../b",
     "'..' segments are not allowed"),
    ("type: kray.fs.Trigger\n    from: /in\n    regExp: '(unclosed'", "not a valid regular"),
    ("type: kray.fs.Trigger\n    from: /in\n    path: /other", "exactly one of"),
    ("type: kray.fs.Trigger\n    from: /in\n    action: SHRED", "action"),
    ("type: kray.http.Trigger\n    uri: ftp://example.com", "http:// or https://"),
    ("type: kray.http.Trigger\n    uri: http://x\n    responseCondition: '{{ response.'",
     "responseCondition"),
    ("type: kray.http.Trigger\n    uri: http://x\n    interval: PT0S", "interval must be"),
    ("type: kray.jdbc.postgresql.Trigger\n    url: mysql://x/db\n    sql: SELECT 1",
     "url must look like"),
    ("type: kray.jdbc.postgresql.Trigger\n    url: jdbc:postgresql://x/db\n    sql: SELECT 1\n"
     "    fetchType: MAYBE", "fetchType"),
])
def test_invalid_polling_triggers_fail_at_deploy_naming_the_field(trigger: str,
                                                                  message: str) -> None:
    issues = flow_issues(f"  - id: watch\n    {trigger}\n")
    assert issues, f"accepted: {trigger}"
    assert any(message in issue for issue in issues), issues


def test_slots_fall_on_the_interval_grid() -> None:
    assert slot_of(12_345_678, 1_000_000) == 12_000_000
    assert slot_of(12_000_000, 1_000_000) == 12_000_000
    assert iso_us(200_000) == "1970-01-01T00:00:00.200000+00:00"


# -- HTTP -----------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, tuple[int, bytes, str]] = {}
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": self.command, "path": self.path, "body": body,
                          "headers": {k.lower(): v for k, v in self.headers.items()}})
        code, data, content_type = self.routes.get(self.path, (404, b"not found",
                                                               "text/plain"))
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Poll", "1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.routes.update({
        "/price": (200, json.dumps({"price": 100}).encode(), "application/json"),
        "/expensive": (200, json.dumps({"price": 500}).encode(), "application/json"),
        "/down": (503, b"maintenance", "text/plain"),
        "/text": (200, "caf\u00e9 ok".encode(), "text/plain; charset=utf-8"),
    })
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def http_trigger(uri: str, extra: str = "", interval: str = "PT1H") -> str:
    return (f"  - id: watch\n    type: kray.http.Trigger\n    uri: {uri}\n"
            f"    interval: {interval}\n{extra}")


def test_http_default_condition_fires_on_success_with_the_decoded_body(server: str) -> None:
    source = make_source(http_trigger(f"{server}/price"))
    [messages] = run(session(source, fetch()))
    assert len(messages) == 1
    variables = messages[0].variables
    assert variables["statusCode"] == variables["code"] == 200
    assert variables["body"] == {"price": 100}
    assert variables["uri"] == f"{server}/price"
    assert variables["headers"]["x-poll"] == ["1"]
    assert messages[0].id.startswith("poll/")


def test_http_default_condition_holds_back_on_an_error_status(server: str) -> None:
    [messages] = run(session(make_source(http_trigger(f"{server}/down")), fetch()))
    assert messages == []


def test_http_custom_condition_sees_the_response_as_data(server: str) -> None:
    condition = "    responseCondition: \"{{ json(response.body).price <= 110 }}\"\n"
    [cheap] = run(session(make_source(http_trigger(f"{server}/price", condition)), fetch()))
    [dear] = run(session(make_source(http_trigger(f"{server}/expensive", condition)),
                         fetch()))
    assert len(cheap) == 1 and dear == []


def test_http_text_body_stays_text(server: str) -> None:
    [messages] = run(session(make_source(http_trigger(f"{server}/text")), fetch()))
    assert messages[0].variables["body"] == "caf\u00e9 ok"


def test_http_request_is_rendered_with_secrets(server: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAY_SECRET_POLL_TOKEN", "t0ken-xyz")
    extra = ("    method: POST\n    headers:\n"
             "      Authorization: \"Bearer {{ secret('POLL_TOKEN') }}\"\n"
             "    body: {asked: \"{{ flow.id }}\"}\n")
    _Handler.seen.clear()
    [messages] = run(session(make_source(http_trigger(f"{server}/price", extra)), fetch()))
    assert len(messages) == 1
    request = _Handler.seen[-1]
    assert request["method"] == "POST"
    assert request["headers"]["authorization"] == "Bearer t0ken-xyz"
    assert json.loads(request["body"]) == {"asked": "polled"}
    assert request["headers"]["content-type"] == "application/json"


def test_http_poll_id_is_its_slot_so_a_retried_poll_repeats_it(server: str) -> None:
    at = 1_700_000_123.4
    first = frozen(make_source(http_trigger(f"{server}/price", interval="PT10S")), at)
    [one] = run(session(first, fetch()))
    # the actor died before acknowledging: a new source, same position, same slot
    again = frozen(make_source(http_trigger(f"{server}/price", interval="PT10S")), at + 1)
    [two] = run(session(again, fetch()))
    assert one[0].id == two[0].id == "poll/" + iso_us(1_700_000_120_000_000)
    # acknowledged: the position holds the slot, a restart in the same slot polls nothing
    acked = frozen(make_source(http_trigger(f"{server}/price", interval="PT10S")), at)
    run(session(acked, fetch_ack()))
    assert acked.position() == {"lastPoll": iso_us(1_700_000_120_000_000)}
    restarted = frozen(make_source(http_trigger(f"{server}/price", interval="PT10S"),
                                   acked.position()), at + 2)
    assert run(session(restarted, fetch())) == [[]]
    later = frozen(make_source(http_trigger(f"{server}/price", interval="PT10S"),
                               acked.position()), at + 10)
    [three] = run(session(later, fetch()))
    assert three[0].id == "poll/" + iso_us(1_700_000_130_000_000)


def test_http_fetch_waits_for_the_next_poll_within_its_timeout(server: str) -> None:
    import math

    source: Any = make_source(http_trigger(f"{server}/price", interval="PT0.5S"))
    start = time.time()
    offset = math.ceil(start / 0.5) * 0.5 + 0.1 - start  # now: 0.1 s into a slot
    source.clock = lambda: time.time() + offset

    async def steps(s: Source) -> tuple[int, int, int, float]:
        first = await s.fetch(10, 0.0)
        not_due = await s.fetch(10, 0.0)  # the next slot is 0.4 s away
        started = time.monotonic()
        second = await s.fetch(10, 2.0)  # waits for it
        return len(first), len(not_due), len(second), time.monotonic() - started
    [(first, not_due, second, waited)] = run(session(source, steps))
    assert (first, not_due, second) == (1, 0, 1)
    assert 0.25 <= waited <= 0.7


def test_http_unreachable_server_is_a_source_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(SourceError, match="failed: ConnectError"):
        run(session(make_source(http_trigger(f"http://127.0.0.1:{port}/x")), fetch()))


def test_http_cloud_metadata_address_is_refused() -> None:
    with pytest.raises(SourceError, match="metadata"):
        run(session(make_source(http_trigger("http://169.254.169.254/latest/meta-data/")),
                    fetch()))


def test_http_bad_condition_at_runtime_is_a_source_error(server: str) -> None:
    extra = "    responseCondition: \"{{ response.body.missing.deeper }}\"\n"
    with pytest.raises(SourceError, match="responseCondition"):
        run(session(make_source(http_trigger(f"{server}/price", extra)), fetch()))


# -- files: local folder --------------------------------------------------------------------

def file_trigger(folder: Path | str, extra: str = "", interval: str = "PT0.05S") -> str:
    return (f"  - id: watch\n    type: kray.fs.Trigger\n    from: {folder}\n"
            f"    interval: {interval}\n{extra}")


def write(path: Path, text: str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_new_files_become_messages_and_move_after_ack(tmp_path: Path) -> None:
    inbox, archive = tmp_path / "in", tmp_path / "archive"
    write(inbox / "a.csv", "1,2\n", 1_700_000_000)
    write(inbox / "b.csv", "3,4,5\n", 1_700_000_100)
    source = make_source(file_trigger(inbox, f"    action: MOVE\n    moveDirectory: {archive}\n"))

    async def steps(s: Source) -> tuple[list[Any], list[Any], list[Any]]:
        first = await s.fetch(100, 0.0)
        again = await s.fetch(100, 1.0)  # listed again before the ack: not re-emitted
        await s.ack(first)
        after = await s.fetch(100, 1.0)
        return first, again, after
    [(first, again, after)] = run(session(source, steps))
    assert [m.variables["name"] for m in first] == ["a.csv", "b.csv"]  # oldest first
    a = first[0].variables
    assert a["path"] == str(inbox / "a.csv") and a["size"] == 4
    assert a["modified"].startswith("2023-11-14T22:13:20")
    assert a["movedTo"] == str(archive / "a.csv")
    assert a["files"][0]["name"] == "a.csv"
    assert first[0].id == f"{inbox / 'a.csv'}@{a['version']}"
    assert again == [] and after == []
    assert sorted(p.name for p in archive.iterdir()) == ["a.csv", "b.csv"]
    assert list(inbox.iterdir()) == []
    assert source.position() is None  # MOVE needs no memory: the folder is the state


def test_a_file_fetched_but_not_acked_comes_back_with_the_same_id(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    write(inbox / "a.txt", "x")
    extra = "    action: DELETE\n"
    [first] = run(session(make_source(file_trigger(inbox, extra)), fetch()))
    # the actor died before the ack: the new source lists the file again, same id
    [again] = run(session(make_source(file_trigger(inbox, extra)), fetch_ack()))
    assert [m.id for m in first] == [m.id for m in again] and len(first) == 1
    assert not (inbox / "a.txt").exists()  # DELETE after the ack


def test_action_none_remembers_files_across_a_restart(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    write(inbox / "a.txt", "one", 1_700_000_000)
    source = make_source(file_trigger(inbox))
    [first] = run(session(source, fetch_ack()))
    position = source.position()
    assert len(first) == 1 and position is not None
    json.dumps(position)  # the actor persists it as JSON
    restarted = make_source(file_trigger(inbox), position)
    write(inbox / "b.txt", "two", 1_600_000_000)  # older mtime (moved in): still new
    [second] = run(session(restarted, fetch_ack()))
    assert [m.variables["name"] for m in second] == ["b.txt"]
    write(inbox / "a.txt", "one, rewritten", 1_700_000_500)  # a new version: new message
    again = make_source(file_trigger(inbox), restarted.position())
    [third] = run(session(again, fetch_ack()))
    assert [m.variables["name"] for m in third] == ["a.txt"]
    assert third[0].id != first[0].id
    (inbox / "b.txt").unlink()  # files that left the folder are forgotten
    assert set(again.position()["seen"]) == {str(inbox / "a.txt"), str(inbox / "b.txt")}
    run(session(again, fetch(timeout=1.0)))
    assert set(again.position()["seen"]) == {str(inbox / "a.txt")}


def test_max_files_cuts_a_poll_and_the_rest_follows_at_once(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    for i in range(5):
        write(inbox / f"f{i}.txt", str(i), 1_700_000_000 + i)
    source = make_source(file_trigger(inbox, "    maxFiles: 2\n", interval="PT1H"))
    batches = run(session(source, fetch_ack(), fetch_ack(), fetch_ack(), fetch_ack()))
    assert [[m.variables["name"] for m in b] for b in batches] == [
        ["f0.txt", "f1.txt"], ["f2.txt", "f3.txt"], ["f4.txt"], []]


def test_filters_recursion_and_links(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    write(inbox / "keep.csv", "k")
    write(inbox / "skip.json", "s")
    write(inbox / "sub" / "deep.csv", "d")
    (inbox / "link.csv").symlink_to(write(tmp_path / "outside.csv", "secret"))
    flat = run(session(make_source(file_trigger(inbox, "    regExp: '.*\\.csv'\n")), fetch()))
    deep = run(session(make_source(file_trigger(inbox, "    recursive: true\n    glob: '*.csv'\n")),
                       fetch()))
    assert [m.variables["relativePath"] for m in flat[0]] == ["keep.csv"]
    assert sorted(m.variables["relativePath"] for m in deep[0]) == ["keep.csv", "sub/deep.csv"]


def test_move_keeps_the_path_under_the_folder(tmp_path: Path) -> None:
    inbox, archive = tmp_path / "in", tmp_path / "archive"
    write(inbox / "2024" / "jan.csv", "j")
    extra = f"    recursive: true\n    action: MOVE\n    moveDirectory: {archive}\n"
    run(session(make_source(file_trigger(inbox, extra)), fetch_ack()))
    assert (archive / "2024" / "jan.csv").read_text() == "j"


def test_files_are_copied_into_internal_storage_for_the_execution(tmp_path: Path) -> None:
    inbox, storage_dir = tmp_path / "in", tmp_path / "storage"
    write(inbox / "report 1.csv", "a,b\n1,2\n")
    source = make_source(file_trigger(inbox, "    action: DELETE\n"),
                         context={"storage_url": str(storage_dir)})
    [messages] = run(session(source, fetch_ack()))
    uri = messages[0].variables["uri"]
    assert uri.startswith("kray:///company/team/polled/triggers/watch/")
    assert uri.endswith("/report_1.csv")
    assert InternalStorage(str(storage_dir)).read(uri) == b"a,b\n1,2\n"
    assert not (inbox / "report 1.csv").exists()  # the original is gone, the copy stays


def test_a_missing_local_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        run(session(make_source(file_trigger(tmp_path / "nowhere")), fetch()))


def test_a_templated_folder_is_checked_after_rendering(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRAY_SECRET_INBOX", f"{tmp_path}/../etc")
    # valid at deploy (a template); refused once rendered, where the actor validates it
    with pytest.raises(ValueError, match=r"'\.\.' segments are not allowed"):
        make_source(file_trigger("\"{{ secret('INBOX') }}\""))


# -- files: S3 (moto) -----------------------------------------------------------------------

BUCKET = "kray-poll"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    if not moto_available():
        skip_or_fail("moto[server] is not installed: no S3 endpoint for the S3 trigger tests")
    with moto_s3_server() as endpoint:
        create_bucket(endpoint, BUCKET)
        yield endpoint


def s3_fs(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY,
                             client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})


def s3_trigger(endpoint: str, prefix: str, extra: str = "") -> str:
    return (f"  - id: watch\n    type: io.kestra.plugin.aws.s3.Trigger\n    bucket: {BUCKET}\n"
            f"    prefix: {prefix}\n    accessKeyId: {ACCESS_KEY}\n    secretKeyId: {SECRET_KEY}\n"
            f"    region: us-east-1\n    endpointOverride: {endpoint}\n    interval: PT0.05S\n"
            f"{extra}")


def test_s3_objects_become_messages_and_move_after_ack(s3: str) -> None:
    fs, prefix = s3_fs(s3), f"in-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(f"{BUCKET}/{prefix}/a.csv", b"1,2\n")
    fs.pipe_file(f"{BUCKET}/{prefix}/nested/b.csv", b"3,4\n")
    extra = f"    action: MOVE\n    moveTo: {{key: done-{prefix}}}\n"
    source = make_source(s3_trigger(s3, prefix, extra))
    [first, after] = run(session(source, fetch_ack(), fetch(timeout=1.0)))
    assert sorted(m.variables["key"] for m in first) == [f"{prefix}/a.csv",
                                                         f"{prefix}/nested/b.csv"]
    a = next(m.variables for m in first if m.variables["name"] == "a.csv")
    assert a["path"] == f"s3://{BUCKET}/{prefix}/a.csv" and a["etag"] and a["size"] == 4
    assert a["movedTo"] == f"s3://{BUCKET}/done-{prefix}/a.csv"
    assert after == []
    fs.invalidate_cache()
    assert fs.cat_file(f"{BUCKET}/done-{prefix}/nested/b.csv") == b"3,4\n"
    assert not fs.exists(f"{BUCKET}/{prefix}/a.csv")


def test_s3_action_none_remembers_objects_by_etag(s3: str) -> None:
    fs, prefix = s3_fs(s3), f"in-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(f"{BUCKET}/{prefix}/a.json", b"{}")
    source = make_source(s3_trigger(s3, prefix, "    action: NONE\n"))
    [first] = run(session(source, fetch_ack()))
    restarted = make_source(s3_trigger(s3, prefix, "    action: NONE\n"), source.position())
    [nothing] = run(session(restarted, fetch()))
    fs.pipe_file(f"{BUCKET}/{prefix}/a.json", b'{"v": 2}')  # new content, new ETag
    [changed] = run(session(make_source(s3_trigger(s3, prefix, "    action: NONE\n"),
                                        source.position()), fetch()))
    assert len(first) == 1 and nothing == [] and len(changed) == 1
    assert changed[0].id != first[0].id


def test_s3_fs_url_with_storage_options_and_delete(s3: str) -> None:
    fs, prefix = s3_fs(s3), f"in-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(f"{BUCKET}/{prefix}/x.bin", b"\x00\x01")
    extra = (f"    action: DELETE\n    storageOptions:\n      key: {ACCESS_KEY}\n"
             f"      secret: {SECRET_KEY}\n      client_kwargs: {{endpoint_url: '{s3}', "
             "region_name: us-east-1}\n")
    source = make_source(file_trigger(f"s3://{BUCKET}/{prefix}", extra))
    [messages] = run(session(source, fetch_ack()))
    assert [m.variables["name"] for m in messages] == ["x.bin"]
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}/{prefix}/x.bin")


# -- SQL (PostgreSQL) -----------------------------------------------------------------------

PG_URL = os.environ.get("KRAY_TEST_PG_URL", "jdbc:postgresql://127.0.0.1:5432/test?user=postgres")


@pytest.fixture
def table() -> Iterator[tuple[Any, str]]:
    """A connection (autocommit) and a fresh table name, dropped after the test."""
    try:
        import psycopg
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install 'kray[sql]')")
    try:
        conn = psycopg.connect(PG_URL.removeprefix("jdbc:"), autocommit=True, connect_timeout=3)
    except psycopg.Error as e:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_URL}: {e}")
    name = f"kray_poll_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE TABLE {name} (id int, amount numeric(10,2), day date, done bool "
                 "DEFAULT false)")
    yield conn, name
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.close()


def sql_trigger(sql: str, extra: str = "", url: str = PG_URL) -> str:
    return (f"  - id: watch\n    type: io.kestra.plugin.jdbc.postgresql.Trigger\n"
            f"    url: \"{url}\"\n    sql: \"{sql}\"\n    interval: PT0.05S\n{extra}")


def test_sql_rows_make_one_message_with_json_values(table: tuple[Any, str]) -> None:
    conn, name = table
    conn.execute(f"INSERT INTO {name} VALUES (1, 12.50, '2024-03-01'), (2, 3, '2024-03-02')")
    source = make_source(sql_trigger(f"SELECT id, amount, day FROM {name} WHERE NOT done "
                                     "ORDER BY id", "    fetchType: FETCH\n"))
    [messages] = run(session(source, fetch_ack()))
    assert len(messages) == 1
    variables = messages[0].variables
    assert variables["size"] == 2
    assert variables["rows"] == [{"id": 1, "amount": 12.5, "day": "2024-03-01"},
                                 {"id": 2, "amount": 3.0, "day": "2024-03-02"}]
    assert messages[0].id.startswith("poll/")
    json.dumps(variables)


def test_sql_no_rows_no_message(table: tuple[Any, str]) -> None:
    conn, name = table
    source = make_source(sql_trigger(f"SELECT * FROM {name} WHERE NOT done"))
    [messages] = run(session(source, fetch()))
    assert messages == []
    assert source.position() is not None  # an empty poll is done: not asked again


def test_sql_fetch_one_and_credentials_from_secrets(table: tuple[Any, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    conn, name = table
    conn.execute(f"INSERT INTO {name} VALUES (7, 1, '2024-01-01'), (8, 2, '2024-01-02')")
    monkeypatch.setenv("KRAY_SECRET_PG_URL", PG_URL)
    monkeypatch.setenv("KRAY_SECRET_PG_PASSWORD", "unused-with-trust-auth")
    source = make_source(sql_trigger(
        f"SELECT id FROM {name} ORDER BY id", "    fetchType: FETCH_ONE\n"
        "    password: \"{{ secret('PG_PASSWORD') }}\"\n", url="{{ secret('PG_URL') }}"))
    [messages] = run(session(source, fetch()))
    assert messages[0].variables["row"] == {"id": 7}
    assert messages[0].variables["size"] == 2


def test_sql_error_is_a_source_error_and_the_trigger_does_not_write(
        table: tuple[Any, str]) -> None:
    conn, name = table
    with pytest.raises(SourceError, match="no_such_table"):
        run(session(make_source(sql_trigger("SELECT * FROM no_such_table")), fetch()))
    # a data-modifying query is rolled back: the trigger watches, it does not write
    conn.execute(f"INSERT INTO {name} VALUES (1, 1, '2024-01-01')")
    source = make_source(sql_trigger(f"UPDATE {name} SET done = true RETURNING id"))
    [messages] = run(session(source, fetch()))
    assert messages[0].variables["rows"] == [{"id": 1}]
    assert conn.execute(f"SELECT done FROM {name}").fetchall() == [(False,)]


def test_sql_unreachable_server_is_a_source_error() -> None:
    pytest.importorskip("psycopg")
    source = make_source(sql_trigger("SELECT 1", url="jdbc:postgresql://127.0.0.1:1/test"
                                     "?user=postgres&connectTimeout=2"))
    with pytest.raises(SourceError, match="cannot connect"):
        run(session(source, fetch()))


def test_every_polling_source_is_a_polling_source() -> None:
    for name in ("kray.http.Trigger", "kray.fs.Trigger", "kray.jdbc.postgresql.Trigger"):
        assert issubclass(source_types()[name].source_class(), PollingSource)
    assert FileSource.redelivers
