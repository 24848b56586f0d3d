from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from kray.testing import TaskRunner

SET = "io.kestra.plugin.core.kv.Set"
GET = "io.kestra.plugin.core.kv.Get"
KEYS = "io.kestra.plugin.core.kv.GetKeys"
DELETE = "io.kestra.plugin.core.kv.Delete"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kv_runner(tmp_path: Path, clock: Clock) -> Iterator[TaskRunner]:
    with TaskRunner(tmp_path, namespace="company.team", clock=clock) as r:
        yield r


def test_set_then_get(kv_runner: TaskRunner) -> None:
    result = kv_runner.run({"id": "set", "type": SET, "key": "user_{{ inputs.id }}",
                            "value": "{{ inputs.name }}"}, {"inputs": {"id": 7, "name": "Ann"}})
    assert (result.state, result.outputs) == ("SUCCESS", {})
    assert kv_runner.kv.get("company.team", "user_7") == "Ann"
    got = kv_runner.run({"id": "get", "type": GET, "key": "user_7"})
    assert got.outputs == {"value": "Ann"}


def test_set_structured_and_typed_values(kv_runner: TaskRunner) -> None:
    runs = [
        {"key": "obj", "value": {"a": "{{ 1 + 1 }}", "b": [1, True]}},
        {"key": "num", "value": "{{ 40 + 2 }}", "kvType": "NUMBER"},
        {"key": "flag", "value": "true", "kvType": "boolean"},
        {"key": "doc", "value": '{"x": [1, 2]}', "kvType": "JSON"},
        {"key": "when", "value": "2024-05-01T10:00:00+00:00", "kvType": "DATETIME"},
        {"key": "wait", "value": "PT90M", "kvType": "DURATION"},
    ]
    for props in runs:
        result = kv_runner.run({"id": "set", "type": SET, **props})
        assert result.state == "SUCCESS", result.error
    kv = kv_runner.kv
    assert kv.get("company.team", "obj") == {"a": "2", "b": [1, True]}
    assert kv.get("company.team", "num") == 42
    assert kv.get("company.team", "flag") is True
    assert kv.get("company.team", "doc") == {"x": [1, 2]}
    assert kv.get("company.team", "when") == "2024-05-01T10:00:00+00:00"
    assert kv.get("company.team", "wait") == "PT1H30M"


def test_set_refuses_a_value_that_is_not_its_type(kv_runner: TaskRunner) -> None:
    result = kv_runner.run({"id": "set", "type": SET, "key": "n", "value": "abc",
                            "kvType": "NUMBER"})
    assert result.state == "FAILED"
    assert "NUMBER" in (result.error or "")
    assert kv_runner.kv.get("company.team", "n") is None


def test_set_rejects_unknown_types_and_bad_ttls(kv_runner: TaskRunner) -> None:
    with pytest.raises(ValidationError):
        kv_runner.parse({"id": "s", "type": SET, "key": "k", "value": 1, "kvType": "BLOB"})
    with pytest.raises(ValidationError):
        kv_runner.parse({"id": "s", "type": SET, "key": "k", "value": 1, "ttl": "PT0S"})


def test_overwrite_false_fails_when_the_key_exists(kv_runner: TaskRunner) -> None:
    first = {"id": "set", "type": SET, "key": "k", "value": "one", "overwrite": False}
    assert kv_runner.run(first).state == "SUCCESS"
    again = kv_runner.run({**first, "value": "two"})
    assert again.state == "FAILED"
    assert "already exists" in (again.error or "") and "company.team" in (again.error or "")
    assert kv_runner.kv.get("company.team", "k") == "one"
    assert kv_runner.run({**first, "value": "three", "overwrite": True}).state == "SUCCESS"
    assert kv_runner.kv.get("company.team", "k") == "three"


def test_ttl_expires_the_value(kv_runner: TaskRunner, clock: Clock) -> None:
    result = kv_runner.run({"id": "set", "type": SET, "key": "temp", "value": "x",
                            "ttl": "PT1H", "overwrite": False})
    assert result.state == "SUCCESS", result.error
    clock.now += timedelta(minutes=59)
    assert kv_runner.run({"id": "get", "type": GET, "key": "temp"}).outputs == {"value": "x"}
    clock.now += timedelta(minutes=2)
    assert kv_runner.run({"id": "get", "type": GET, "key": "temp"}).outputs == {"value": None}
    # an expired key does not block overwrite: false
    assert kv_runner.run({"id": "set", "type": SET, "key": "temp", "value": "y",
                          "overwrite": False}).state == "SUCCESS"
    assert kv_runner.kv.get("company.team", "temp") == "y"


def test_get_missing(kv_runner: TaskRunner) -> None:
    assert kv_runner.run({"id": "g", "type": GET, "key": "nope"}).outputs == {"value": None}
    strict = kv_runner.run({"id": "g", "type": GET, "key": "nope", "errorOnMissing": True})
    assert strict.state == "FAILED"
    assert strict.error == "no KV key 'nope' in namespace 'company.team'"


def test_another_namespace(kv_runner: TaskRunner) -> None:
    kv_runner.run({"id": "s", "type": SET, "key": "k", "value": "other",
                   "namespace": "{{ inputs.ns }}"}, {"inputs": {"ns": "company.other"}})
    assert kv_runner.kv.get("company.other", "k") == "other"
    assert kv_runner.kv.get("company.team", "k") is None
    got = kv_runner.run({"id": "g", "type": GET, "key": "k", "namespace": "company.other"})
    assert got.outputs == {"value": "other"}


def test_get_keys(kv_runner: TaskRunner) -> None:
    for key in ("app_a", "app_b", "db_x"):
        kv_runner.kv.set("company.team", key, 1)
    kv_runner.kv.set("company.other", "app_z", 1)
    assert kv_runner.run({"id": "k", "type": KEYS}).outputs == {
        "keys": ["app_a", "app_b", "db_x"]}
    assert kv_runner.run({"id": "k", "type": KEYS, "prefix": "{{ inputs.p }}"},
                         {"inputs": {"p": "app"}}).outputs == {"keys": ["app_a", "app_b"]}
    assert kv_runner.run({"id": "k", "type": KEYS, "namespace": "company.other"}
                         ).outputs == {"keys": ["app_z"]}
    assert kv_runner.run({"id": "k", "type": KEYS, "prefix": "zzz"}).outputs == {"keys": []}


def test_delete(kv_runner: TaskRunner) -> None:
    kv_runner.kv.set("company.team", "gone", "x")
    assert kv_runner.run({"id": "d", "type": DELETE, "key": "gone"}).outputs == {
        "deleted": True}
    assert kv_runner.kv.get("company.team", "gone") is None
    assert kv_runner.run({"id": "d", "type": DELETE, "key": "gone"}).outputs == {
        "deleted": False}
    strict = kv_runner.run({"id": "d", "type": DELETE, "key": "gone", "errorOnMissing": True})
    assert strict.state == "FAILED" and "gone" in (strict.error or "")


@pytest.mark.parametrize("key", ["{{ inputs.empty }}", "bad key!"])
def test_invalid_keys_fail(kv_runner: TaskRunner, key: str) -> None:
    result = kv_runner.run({"id": "s", "type": SET, "key": key, "value": "v"},
                           {"inputs": {"empty": ""}})
    assert result.state == "FAILED"
    assert "key" in (result.error or "")


def test_kv_template_function_reads_what_set_wrote(kv_runner: TaskRunner) -> None:
    kv_runner.run({"id": "s", "type": SET, "key": "color", "value": "blue"})
    result = kv_runner.run({"id": "r", "type": "io.kestra.plugin.core.debug.Return",
                            "format": "{{ kv('color') }}"})
    assert result.outputs == {"value": "blue"}
