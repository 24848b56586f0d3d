"""``storage.FilterItems`` and ``storage.DeduplicateItems`` on real storage files."""

from __future__ import annotations

import json

import pytest

from kray.testing import TaskRunner

FILTER = "io.kestra.plugin.core.storage.FilterItems"
DEDUP = "io.kestra.plugin.core.storage.DeduplicateItems"

ITEMS = [{"id": 1, "value": 5, "name": "a"}, {"id": 2, "value": 50, "name": "b"},
         {"id": 3, "value": None, "name": "c"}, {"id": 1, "value": 7, "name": "d"},
         {"id": 4, "value": 500, "name": "e"}]


def put_items(runner: TaskRunner, items: list, name: str = "items.jsonl") -> str:
    data = "".join(json.dumps(i) + "\n" for i in items).encode()
    return runner.storage.put(f"inputs/{name}", data)


def read_items(runner: TaskRunner, uri: str) -> list:
    return [json.loads(line) for line in runner.storage.read(uri).decode().splitlines()]


def run_filter(runner: TaskRunner, condition: str, **props: object):
    uri = put_items(runner, ITEMS)
    return runner.run({"id": "f", "type": FILTER, "from": uri, "filterCondition": condition,
                       **props}, {"inputs": {"limit": 10}})


def test_include_by_field_and_by_row(runner: TaskRunner) -> None:
    for condition in ("{{ value > inputs.limit }}", "{{ row.value > inputs.limit }}"):
        result = run_filter(runner, condition, errorOrNullBehavior="EXCLUDE")
        assert result.state == "SUCCESS", result.error
        assert [i["name"] for i in read_items(runner, result.outputs["uri"])] == ["b", "e"]
        assert result.outputs["processedItemsTotal"] == 5
        assert result.outputs["droppedItemsTotal"] == 3
        assert result.outputs["uri"].endswith("/f.jsonl")


def test_exclude(runner: TaskRunner) -> None:
    result = run_filter(runner, "{{ value == null }}", filterType="EXCLUDE")
    assert result.state == "SUCCESS", result.error
    assert [i["name"] for i in read_items(runner, result.outputs["uri"])] == ["a", "b", "d", "e"]
    assert result.outputs["droppedItemsTotal"] == 1


def test_null_or_error_fails_by_default(runner: TaskRunner) -> None:
    result = run_filter(runner, "{{ value }}")
    assert result.state == "FAILED"
    assert "item 3: filterCondition rendered null" in (result.error or "")
    result = run_filter(runner, "{{ row.missing > 1 }}")
    assert result.state == "FAILED" and "item 1: filterCondition failed" in (result.error or "")


@pytest.mark.parametrize("behavior, kept", [("INCLUDE", ["a", "b", "c", "d", "e"]),
                                            ("EXCLUDE", ["a", "b", "d", "e"])])
def test_error_or_null_behavior(runner: TaskRunner, behavior: str, kept: list[str]) -> None:
    result = run_filter(runner, "{{ value }}", errorOrNullBehavior=behavior)
    assert result.state == "SUCCESS", result.error
    assert [i["name"] for i in read_items(runner, result.outputs["uri"])] == kept


def test_items_are_data_never_templates(runner: TaskRunner) -> None:
    uri = put_items(runner, [{"name": "{{ secret('API') }}"}, {"name": "x"},
                             {"inputs": "shadow", "name": "y"}])
    result = runner.run({"id": "f", "type": FILTER, "from": uri,
                         "filterCondition": "{{ name | length > 1 and inputs.limit == 10 }}"},
                        {"inputs": {"limit": 10}})
    assert result.state == "SUCCESS", result.error
    assert read_items(runner, result.outputs["uri"]) == [{"name": "{{ secret('API') }}"}]


def test_lines_that_are_not_json_and_blank_lines(runner: TaskRunner) -> None:
    uri = runner.storage.put("inputs/words.txt", b"apple\n\nbanana\ncherry")
    result = runner.run({"id": "f", "type": FILTER, "from": uri,
                         "filterCondition": "{{ (row | startsWith('b')) or row == 'cherry' }}"})
    assert result.state == "SUCCESS", result.error
    assert runner.storage.read(result.outputs["uri"]) == b"banana\ncherry\n"
    assert result.outputs["uri"].endswith("/f.txt")
    assert result.outputs["processedItemsTotal"] == 3


def test_filter_needs_a_storage_uri(runner: TaskRunner) -> None:
    result = runner.run({"id": "f", "type": FILTER, "from": "/etc/passwd",
                         "filterCondition": "{{ true }}"})
    assert result.state == "FAILED" and "kray://" in (result.error or "")
    result = runner.run({"id": "f", "type": FILTER, "from": "kray:///nope.jsonl",
                         "filterCondition": "{{ true }}"})
    assert result.state == "FAILED" and "file not found" in (result.error or "")


def test_deduplicate_keeps_the_last_item_per_key(runner: TaskRunner) -> None:
    uri = put_items(runner, ITEMS)
    result = runner.run({"id": "d", "type": DEDUP, "from": uri, "expr": "{{ id }}"})
    assert result.state == "SUCCESS", result.error
    assert [i["name"] for i in read_items(runner, result.outputs["uri"])] == ["b", "c", "d", "e"]
    assert result.outputs["processedItemsTotal"] == 5
    assert result.outputs["droppedItemsTotal"] == 1


def test_deduplicate_by_composite_key_and_errors(runner: TaskRunner) -> None:
    uri = put_items(runner, [{"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 1}])
    result = runner.run({"id": "d", "type": DEDUP, "from": uri, "expr": "{{ row.a }}-{{ b }}"})
    assert read_items(runner, result.outputs["uri"]) == [{"a": 1, "b": 2}, {"a": 1, "b": 1}]
    result = runner.run({"id": "d", "type": DEDUP, "from": uri, "expr": "{{ row.zzz }}"})
    assert result.state == "FAILED" and "item 1: expr failed" in (result.error or "")


def test_large_file_streams(runner: TaskRunner) -> None:
    n = 20_000
    data = "".join(json.dumps({"k": i % 100, "i": i}) + "\n" for i in range(n)).encode()
    uri = runner.storage.put("inputs/big.jsonl", data)
    result = runner.run({"id": "d", "type": DEDUP, "from": uri, "expr": "{{ k }}"})
    assert result.state == "SUCCESS", result.error
    kept = read_items(runner, result.outputs["uri"])
    assert [i["i"] for i in kept] == list(range(n - 100, n))
