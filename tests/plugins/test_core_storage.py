from __future__ import annotations

import json

import pytest
from kray.plugins.core import storage as storage_tasks
from kray.plugins.core.storage import _rows, parse_size
from pydantic import ValidationError

from kray.testing import TaskRunner

WRITE = "io.kestra.plugin.core.storage.Write"
SIZE = "io.kestra.plugin.core.storage.Size"
CONCAT = "io.kestra.plugin.core.storage.Concat"
SPLIT = "io.kestra.plugin.core.storage.Split"
DELETE = "io.kestra.plugin.core.storage.Delete"


def put(runner: TaskRunner, name: str, data: bytes) -> str:
    return runner.storage.put(f"inputs/{name}", data)


def concat(runner: TaskRunner, uris: list[str] | str, **props: object) -> bytes:
    result = runner.run({"id": "concat", "type": CONCAT, "files": uris, **props})
    assert result.state == "SUCCESS", result.error
    return runner.storage.read(result.outputs["uri"])


def split(runner: TaskRunner, uri: str, **props: object) -> list[str]:
    result = runner.run({"id": "split", "type": SPLIT, "from": uri, **props})
    assert result.state == "SUCCESS", result.error
    return result.outputs["uris"]


# -- Write and Size ------------------------------------------------------------------------

def test_write_renders_content_into_a_new_file(runner: TaskRunner) -> None:
    result = runner.run({"id": "w", "type": WRITE, "content": "hello {{ inputs.who }}\n"},
                        {"inputs": {"who": "kray"}})
    assert result.state == "SUCCESS", result.error
    uri = result.outputs["uri"]
    assert uri.startswith("kray:///company/team/hello/executions/") and uri.endswith("/w.ion")
    assert f"/tasks/w/{result.task_run_id}/" in uri
    assert runner.storage.read(uri) == b"hello kray\n"


@pytest.mark.parametrize("extension, suffix", [(".csv", "/w.csv"), ("txt", "/w.txt"),
                                               ("", "/w")])
def test_write_extension(runner: TaskRunner, extension: str, suffix: str) -> None:
    result = runner.run({"id": "w", "type": WRITE, "content": "x", "extension": extension})
    assert result.outputs["uri"].endswith(suffix)


def test_write_rejects_a_path_as_extension(runner: TaskRunner) -> None:
    result = runner.run({"id": "w", "type": WRITE, "content": "x", "extension": "/../../x"})
    assert result.state == "FAILED"
    assert "extension" in (result.error or "")


def test_size(runner: TaskRunner) -> None:
    uri = put(runner, "a.txt", "héllo".encode())
    result = runner.run({"id": "s", "type": "io.kestra.core.tasks.storages.Size",
                         "uri": "{{ inputs.file }}"}, {"inputs": {"file": uri}})
    assert result.outputs == {"size": 6}


@pytest.mark.parametrize("uri, message", [
    ("kray:///inputs/none.txt", "not found"),
    ("/etc/passwd", "kray://"),
    ("kray:///../etc/passwd", "invalid storage"),
])
def test_size_failures(runner: TaskRunner, uri: str, message: str) -> None:
    result = runner.run({"id": "s", "type": SIZE, "uri": uri})
    assert result.state == "FAILED"
    assert message in (result.error or "")


# -- Concat --------------------------------------------------------------------------------

def test_concat_in_order(runner: TaskRunner) -> None:
    uris = [put(runner, f"{i}.txt", f"part{i}\n".encode()) for i in range(3)]
    assert concat(runner, uris) == b"part0\npart1\npart2\n"


def test_concat_separator_goes_between_files(runner: TaskRunner) -> None:
    uris = [put(runner, f"{i}.txt", str(i).encode()) for i in range(3)]
    assert concat(runner, uris, separator=",") == b"0,1,2"


def test_concat_takes_a_json_list_template(runner: TaskRunner) -> None:
    uris = [put(runner, f"{i}.txt", str(i).encode()) for i in range(3)]
    result = runner.run({"id": "c", "type": CONCAT, "files": "{{ outputs.s.uris }}",
                         "extension": ".csv"}, {"outputs": {"s": {"uris": uris}}})
    assert result.state == "SUCCESS", result.error
    assert result.outputs["uri"].endswith("/c.csv")
    assert runner.storage.read(result.outputs["uri"]) == b"012"
    assert concat(runner, json.dumps(uris)) == b"012"


def test_concat_missing_file_fails_and_leaves_nothing(runner: TaskRunner) -> None:
    ok = put(runner, "ok.txt", b"ok")
    result = runner.run({"id": "c", "type": CONCAT, "files": [ok, "kray:///inputs/gone.txt"]})
    assert result.state == "FAILED"
    assert "kray:///inputs/gone.txt" in (result.error or "")
    assert [u for u in runner.storage.list("") if "/tasks/c/" in u] == []


def test_concat_rejects_non_storage_uris(runner: TaskRunner) -> None:
    result = runner.run({"id": "c", "type": CONCAT, "files": ["file:///etc/passwd"]})
    assert result.state == "FAILED"
    assert "kray://" in (result.error or "")


# -- Split ---------------------------------------------------------------------------------

ROWS = b"".join(f"row-{i:03d},{'x' * (i % 7)}\n".encode() for i in range(100))


@pytest.mark.parametrize("props, count", [
    ({"rows": 10}, 10), ({"rows": 30}, 4), ({"rows": 1000}, 1),
    ({"partitions": 4}, 4), ({"partitions": 7}, 7), ({"partitions": 300}, 100),
    ({"bytes": 100}, None), ({"bytes": "1KB"}, None), ({"bytes": "1MB"}, 1),
])
def test_split_round_trips_with_concat(runner: TaskRunner, props: dict[str, object],
                                       count: int | None) -> None:
    uri = put(runner, "rows.csv", ROWS)
    uris = split(runner, uri, **props)
    if count is not None:
        assert len(uris) == count
    parts = [runner.storage.read(u) for u in uris]
    assert all(p.endswith(b"\n") for p in parts)  # rows are never cut
    assert all(u.endswith(".csv") for u in uris)
    assert concat(runner, uris) == ROWS


def test_split_rows_counts(runner: TaskRunner) -> None:
    uri = put(runner, "rows.csv", ROWS)
    parts = [runner.storage.read(u) for u in split(runner, uri, rows=30)]
    assert [p.count(b"\n") for p in parts] == [30, 30, 30, 10]


def test_split_partitions_are_balanced(runner: TaskRunner) -> None:
    uri = put(runner, "rows.csv", ROWS)
    parts = [runner.storage.read(u) for u in split(runner, uri, partitions=7)]
    assert [p.count(b"\n") for p in parts] == [15, 15, 14, 14, 14, 14, 14]


def test_split_bytes_keeps_each_part_under_the_limit(runner: TaskRunner) -> None:
    uri = put(runner, "rows.csv", ROWS)
    uris = split(runner, uri, bytes=100)
    assert all(runner.storage.size(u) <= 100 for u in uris)
    assert len(uris) > len(ROWS) // 100


def test_split_a_row_larger_than_the_limit_gets_its_own_part(runner: TaskRunner) -> None:
    data = b"a\n" + b"b" * 50 + b"\nc"
    uris = split(runner, put(runner, "big.txt", data), bytes=10)
    assert [runner.storage.read(u) for u in uris] == [b"a\n", b"b" * 50 + b"\n", b"c"]


def test_split_custom_separator_and_no_trailing_separator(runner: TaskRunner) -> None:
    data = b"a||b||c||d"
    uris = split(runner, put(runner, "pipes.txt", data), rows=3, separator="||")
    assert [runner.storage.read(u) for u in uris] == [b"a||b||c||", b"d"]


def test_split_an_empty_file_gives_no_parts(runner: TaskRunner) -> None:
    uri = put(runner, "empty.txt", b"")
    assert split(runner, uri, rows=5) == []
    assert split(runner, uri, partitions=3) == []


def test_split_rows_from_a_template(runner: TaskRunner) -> None:
    uri = put(runner, "rows.csv", ROWS)
    result = runner.run({"id": "split", "type": SPLIT, "from": "{{ inputs.f }}",
                         "rows": "{{ inputs.n }}"}, {"inputs": {"f": uri, "n": 50}})
    assert len(result.outputs["uris"]) == 2


def test_split_streams_across_chunks(runner: TaskRunner,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny chunks: separators (and rows) straddle every chunk boundary.
    monkeypatch.setattr(storage_tasks, "CHUNK", 3)
    data = b"alpha<>beta<>gamma<><>delta"
    uris = split(runner, put(runner, "s.txt", data), rows=2, separator="<>")
    assert [runner.storage.read(u) for u in uris] == [b"alpha<>beta<>", b"gamma<><>",
                                                      b"delta"]
    assert concat(runner, uris) == data


def test_split_a_large_file(runner: TaskRunner) -> None:
    line = b"0123456789" * 10 + b"\n"
    data = line * 30_000  # ~3 MiB: several read chunks
    uris = split(runner, put(runner, "large.txt", data), bytes="1MB")
    assert len(uris) == 3
    assert all(runner.storage.size(u) <= 1 << 20 for u in uris)
    assert concat(runner, uris) == data


@pytest.mark.parametrize("props", [{}, {"rows": 1, "partitions": 2},
                                   {"rows": 1, "bytes": "1KB", "partitions": 1},
                                   {"rows": 1, "separator": ""}])
def test_split_needs_exactly_one_mode(runner: TaskRunner, props: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        runner.parse({"id": "s", "type": SPLIT, "from": "kray:///x", **props})


@pytest.mark.parametrize("props, message", [
    ({"rows": 0}, "at least 1"), ({"partitions": "{{ inputs.n }}"}, "integer"),
    ({"bytes": "lots"}, "size"),
])
def test_split_bad_counts_fail(runner: TaskRunner, props: dict[str, object],
                               message: str) -> None:
    uri = put(runner, "rows.csv", ROWS)
    result = runner.run({"id": "s", "type": SPLIT, "from": uri, **props},
                        {"inputs": {"n": "many"}})
    assert result.state == "FAILED"
    assert message in (result.error or "")


def test_split_missing_file_fails(runner: TaskRunner) -> None:
    result = runner.run({"id": "s", "type": SPLIT, "from": "kray:///inputs/no.csv", "rows": 1})
    assert (result.state, result.error) == ("FAILED", "file not found: kray:///inputs/no.csv")


def test_rows_helper() -> None:
    import io
    assert list(_rows(io.BytesIO(b"a\nb\n\nc"), b"\n")) == [b"a\n", b"b\n", b"\n", b"c"]
    assert list(_rows(io.BytesIO(b""), b"\n")) == []


@pytest.mark.parametrize("text, size", [(512, 512), ("512", 512), ("10KB", 10240),
                                        ("10kb", 10240), ("1MB", 1 << 20), ("1.5 KiB", 1536),
                                        ("2GB", 2 << 30), ("100B", 100)])
def test_parse_size(text: int | str, size: int) -> None:
    assert parse_size(text) == size


# -- Delete --------------------------------------------------------------------------------

def test_delete(runner: TaskRunner) -> None:
    uri = put(runner, "d.txt", b"bye")
    result = runner.run({"id": "d", "type": "io.kestra.core.tasks.storages.Delete", "uri": uri})
    assert result.outputs == {"uri": uri, "deleted": True}
    assert not runner.storage.exists(uri)
    again = runner.run({"id": "d", "type": DELETE, "uri": uri})
    assert (again.state, again.outputs) == ("SUCCESS", {"uri": uri, "deleted": False})
    strict = runner.run({"id": "d", "type": DELETE, "uri": uri, "errorOnMissing": True})
    assert strict.state == "FAILED" and uri in (strict.error or "")
