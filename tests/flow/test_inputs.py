from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kray.errors import InputValidationError
from kray.flow.inputs import (
    check_declaration,
    format_duration,
    parse_duration,
    resolve_inputs,
)
from kray.flow.model import Flow, Input
from kray.task import Task


def make_flow(*inputs: dict[str, Any]) -> Flow:
    return Flow(id="f", namespace="team", inputs=[Input.model_validate(i) for i in inputs],
                tasks=[Task.model_construct(id="t", type="x")])


def resolve(decl: dict[str, Any], raw: dict[str, Any], **kw: Any) -> Any:
    return resolve_inputs(make_flow(decl), raw, **kw).get(decl["id"])


def messages(decl: dict[str, Any] | list[dict[str, Any]], raw: dict[str, Any]) -> list[str]:
    decls = decl if isinstance(decl, list) else [decl]
    with pytest.raises(InputValidationError) as info:
        resolve_inputs(make_flow(*decls), raw)
    for issue in info.value.issues:
        assert issue.message.startswith(issue.path + ": ")
    return [i.message for i in info.value.issues]


# -- valid values, per type --------------------------------------------------------------------

@pytest.mark.parametrize(("decl", "raw", "expected"), [
    ({"type": "STRING"}, "hello", "hello"),
    ({"type": "STRING"}, "", ""),
    ({"type": "STRING"}, 42, "42"),
    ({"type": "STRING", "validator": "[a-z]+"}, "abc", "abc"),
    ({"type": "SECRET", "validator": "s.*"}, "s3cr3t", "s3cr3t"),
    ({"type": "EMAIL"}, "ada@example.com", "ada@example.com"),
    ({"type": "URI"}, "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ({"type": "URI"}, "kray://ns/file.txt", "kray://ns/file.txt"),
    ({"type": "INT"}, "42", 42),
    ({"type": "INT"}, " -3 ", -3),
    ({"type": "INT"}, 7, 7),
    ({"type": "INT"}, 7.0, 7),
    ({"type": "INT", "min": 18, "max": 99}, "18", 18),
    ({"type": "FLOAT"}, "1.5", 1.5),
    ({"type": "FLOAT"}, 2, 2.0),
    ({"type": "FLOAT", "min": 0, "max": 1}, 1, 1.0),
    ({"type": "BOOLEAN"}, "TRUE", True),
    ({"type": "BOOLEAN"}, "false", False),
    ({"type": "BOOL"}, True, True),
    ({"type": "DATETIME"}, "2024-01-15T10:00:00", "2024-01-15T10:00:00+00:00"),
    ({"type": "DATETIME"}, "2024-01-15T10:00:00Z", "2024-01-15T10:00:00+00:00"),
    ({"type": "DATETIME"}, "2024-01-15T10:00:00+02:00", "2024-01-15T10:00:00+02:00"),
    ({"type": "DATETIME", "after": "2024-01-01T00:00:00Z", "before": "2024-12-31T00:00:00Z"},
     "2024-06-01T00:00:00Z", "2024-06-01T00:00:00+00:00"),
    ({"type": "DATE"}, "2024-01-15", "2024-01-15"),
    ({"type": "DATE", "after": "2024-01-01", "before": "2024-01-31"}, "2024-01-31",
     "2024-01-31"),
    ({"type": "TIME"}, "10:30", "10:30:00"),
    ({"type": "TIME"}, "10:30:15.5", "10:30:15"),
    ({"type": "TIME", "after": "09:00", "before": "17:00"}, "12:00:00", "12:00:00"),
    ({"type": "DURATION"}, "PT1H30M", "PT1H30M"),
    ({"type": "DURATION"}, "pt90m", "PT1H30M"),
    ({"type": "DURATION"}, "P1DT2H", "PT26H"),
    ({"type": "DURATION"}, "PT0.5S", "PT0.5S"),
    ({"type": "DURATION", "min": "PT1M", "max": "PT1H"}, "PT1H", "PT1H"),
    ({"type": "JSON"}, '{"a": [1, 2]}', {"a": [1, 2]}),
    ({"type": "JSON"}, {"a": 1}, {"a": 1}),
    ({"type": "JSON"}, "3", 3),
    ({"type": "YAML"}, "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ({"type": "YAML"}, "d: 2024-01-15\n", {"d": "2024-01-15"}),
    ({"type": "YAML"}, [1, 2], [1, 2]),
    ({"type": "ARRAY", "itemType": "INT"}, "[1, \"2\", 3]", [1, 2, 3]),
    ({"type": "ARRAY", "itemType": "STRING"}, ["a", "b"], ["a", "b"]),
    ({"type": "ARRAY", "itemType": "date"}, ["2024-01-15"], ["2024-01-15"]),
    ({"type": "SELECT", "values": ["red", "blue"]}, "blue", "blue"),
    ({"type": "ENUM", "values": ["red", "blue"]}, "red", "red"),
    ({"type": "SELECT", "values": ["red"], "allowCustomValue": True}, "green", "green"),
    ({"type": "SELECT", "values": [1, 2]}, 2, "2"),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, '["a", "c"]', ["a", "c"]),
    ({"type": "MULTISELECT", "options": ["a", "b", "c"]}, ["b"], ["b"]),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, "a, b", ["a", "b"]),
    ({"type": "MULTISELECT", "values": ["a,b", "c"]}, "a,b", ["a,b"]),
    ({"type": "FILE"}, "kray://team/f/file.csv", "kray://team/f/file.csv"),
])
def test_valid_values(decl: dict[str, Any], raw: Any, expected: Any) -> None:
    value = resolve({"id": "x", **decl}, {"x": raw})
    assert value == expected
    json.dumps(value)  # JSON-serialisable


# -- invalid values, per type ------------------------------------------------------------------

@pytest.mark.parametrize(("decl", "raw", "message"), [
    ({"type": "STRING", "validator": "[a-z]+"}, "abc1", "must match the pattern '[a-z]+'"),
    ({"type": "STRING"}, {"a": 1}, "must be a string"),
    ({"type": "SECRET", "validator": "\\d{4}"}, "123", "must match the pattern '\\d{4}'"),
    ({"type": "EMAIL"}, "not-an-email", "must be an email address, got 'not-an-email'"),
    ({"type": "EMAIL"}, "a@b", "must be an email address, got 'a@b'"),
    ({"type": "URI"}, "no scheme here", "must be an absolute URI"),
    ({"type": "URI"}, "relative/path", "must be an absolute URI"),
    ({"type": "INT"}, "4.5", "must be an integer, got '4.5'"),
    ({"type": "INT"}, True, "must be an integer"),
    ({"type": "INT", "min": 18}, "17", "must be >= 18"),
    ({"type": "INT", "max": 99}, 100, "must be <= 99"),
    ({"type": "FLOAT"}, "abc", "must be a number, got 'abc'"),
    ({"type": "FLOAT"}, "nan", "must be a finite number"),
    ({"type": "FLOAT", "min": 0.5}, "0.25", "must be >= 0.5"),
    ({"type": "FLOAT", "max": 1}, 1.5, "must be <= 1.0"),
    ({"type": "BOOLEAN"}, "yes", "must be true or false, got 'yes'"),
    ({"type": "BOOL"}, 1, "must be true or false, got 1"),
    ({"type": "DATETIME"}, "yesterday", "must be an ISO-8601 date-time, got 'yesterday'"),
    ({"type": "DATETIME", "after": "2024-01-01T00:00:00Z"}, "2023-12-31T23:59:59Z",
     "must be after 2024-01-01T00:00:00+00:00"),
    ({"type": "DATETIME", "before": "2024-01-01T00:00:00+00:00"}, "2024-01-01T01:00:00+00:00",
     "must be before 2024-01-01T00:00:00+00:00"),
    ({"type": "DATE"}, "2024-13-01", "must be a date YYYY-MM-DD, got '2024-13-01'"),
    ({"type": "DATE"}, "2024-01-15T10:00:00", "must be a date YYYY-MM-DD"),
    ({"type": "DATE", "after": "2024-01-01"}, "2023-12-31", "must be after 2024-01-01"),
    ({"type": "DATE", "before": "2024-01-01"}, "2024-01-02", "must be before 2024-01-01"),
    ({"type": "TIME"}, "25:00", "must be a time HH:MM[:SS], got '25:00'"),
    ({"type": "TIME", "after": "09:00"}, "08:59", "must be after 09:00:00"),
    ({"type": "DURATION"}, "1h", "must be an ISO-8601 duration like 'PT1H30M', got '1h'"),
    ({"type": "DURATION"}, "PT", "must be an ISO-8601 duration"),
    ({"type": "DURATION", "min": "PT1M"}, "PT30S", "must be >= PT1M"),
    ({"type": "DURATION", "max": "PT1H"}, "PT61M", "must be <= PT1H"),
    ({"type": "JSON"}, "{oops", "must be valid JSON"),
    ({"type": "YAML"}, "a: [1", "must be valid YAML"),
    ({"type": "ARRAY", "itemType": "INT"}, "[1, \"x\"]", "item 1: must be an integer, got 'x'"),
    ({"type": "ARRAY", "itemType": "INT"}, "1,2", "must be a JSON array, got '1,2'"),
    ({"type": "ARRAY", "itemType": "INT"}, {"a": 1}, "must be a JSON array"),
    ({"type": "SELECT", "values": ["red", "blue"]}, "green", "must be one of [red, blue]"),
    ({"type": "SELECT", "values": ["red"]}, ["red"], "must be a single value"),
    ({"type": "MULTISELECT", "values": ["a", "b"]}, '["a", "z"]',
     "must be a subset of [a, b]; not allowed: z"),
    ({"type": "FILE"}, 42, "must be a storage URI or a local file path"),
    ({"type": "FILE"}, "/definitely/not/here.csv", "file not found: /definitely/not/here.csv"),
])
def test_invalid_values(decl: dict[str, Any], raw: Any, message: str) -> None:
    [found] = messages({"id": "x", **decl}, {"x": raw})
    assert found.startswith("inputs.x: " + message), found


# -- required, defaults, extras ----------------------------------------------------------------

def test_every_problem_is_reported_at_once() -> None:
    decls = [{"id": "age", "type": "INT", "min": 18}, {"id": "day", "type": "DATE"},
             {"id": "color", "type": "SELECT", "values": ["red", "blue"]},
             {"id": "ok", "type": "STRING"}]
    assert messages(decls, {"age": "12", "color": "green", "ok": "fine"}) == [
        "inputs.age: must be >= 18", "inputs.day: required",
        "inputs.color: must be one of [red, blue]"]


def test_defaults_optional_and_blank_values() -> None:
    flow = make_flow({"id": "n", "type": "INT", "defaults": 5},
                     {"id": "d", "type": "DURATION", "defaults": "PT90M"},
                     {"id": "opt", "type": "STRING", "required": False},
                     {"id": "blank", "type": "INT", "required": False},
                     {"id": "s", "type": "STRING", "defaults": "x"})
    assert resolve_inputs(flow, {"blank": "", "s": None, "extra": "ignored"}) == {
        "n": 5, "d": "PT1H30M", "opt": None, "blank": None, "s": "x"}
    assert resolve_inputs(flow, {"n": "7", "s": ""})["n"] == 7
    assert resolve_inputs(flow, {"s": ""})["s"] == ""  # an empty STRING is a value


def test_an_invalid_default_is_reported() -> None:
    assert messages({"id": "n", "type": "INT", "min": 10, "defaults": 3}, {}) == [
        "inputs.n: invalid defaults: must be >= 10"]


def test_required_false_with_a_blank_value_uses_none() -> None:
    assert resolve({"id": "x", "type": "DATE", "required": False}, {"x": ""}) is None
    assert messages({"id": "x", "type": "DATE"}, {"x": ""}) == ["inputs.x: required"]


def test_dotted_ids_nest() -> None:
    flow = make_flow({"id": "db.host", "type": "STRING"}, {"id": "db.port", "type": "INT"},
                     {"id": "db.opts.ssl", "type": "BOOLEAN", "defaults": False},
                     {"id": "name", "type": "STRING"})
    expected = {"db": {"host": "h", "port": 5432, "opts": {"ssl": False}}, "name": "n"}
    assert resolve_inputs(flow, {"db.host": "h", "db.port": "5432", "name": "n"}) == expected
    # a nested raw mapping (a subflow call, a JSON body) works as well
    assert resolve_inputs(flow, {"db": {"host": "h", "port": 5432}, "name": "n"}) == expected


def test_dotted_id_conflicting_with_a_plain_one() -> None:
    assert messages([{"id": "a", "type": "STRING"}, {"id": "a.b", "type": "STRING"}],
                    {"a": "x", "a.b": "y"}) == ["inputs.a.b: conflicts with input 'a'"]


def test_unknown_declared_type_is_reported() -> None:
    assert messages({"id": "x", "type": "NOPE"}, {"x": "1"}) == [
        "inputs.x: unknown input type 'NOPE'"]


# -- files -------------------------------------------------------------------------------------

def test_file_is_uploaded_through_the_callback(tmp_path: Path) -> None:
    local = tmp_path / "data.csv"
    local.write_text("a,b\n")
    calls: list[tuple[str, Path]] = []

    def upload(input_id: str, path: Path) -> str:
        calls.append((input_id, path))
        return f"kray://team/f/{input_id}/{path.name}"

    flow = make_flow({"id": "file", "type": "FILE", "extension": ".csv"},
                     {"id": "stored", "type": "FILE"})
    result = resolve_inputs(flow, {"file": str(local), "stored": "kray://x/y"}, upload=upload)
    assert result == {"file": "kray://team/f/file/data.csv", "stored": "kray://x/y"}
    assert calls == [("file", local)]


def test_file_is_not_uploaded_when_another_input_is_invalid(tmp_path: Path) -> None:
    local = tmp_path / "data.csv"
    local.write_text("x")
    calls: list[str] = []
    flow = make_flow({"id": "file", "type": "FILE"}, {"id": "n", "type": "INT"})
    with pytest.raises(InputValidationError):
        resolve_inputs(flow, {"file": str(local), "n": "x"},
                       upload=lambda i, p: calls.append(i) or "kray://x")
    assert calls == []


def test_file_errors(tmp_path: Path) -> None:
    local = tmp_path / "data.txt"
    local.write_text("x")
    assert messages({"id": "f", "type": "FILE"}, {"f": str(local)}) == [
        "inputs.f: file uploads are not available here; give a kray:// URI"]
    assert messages({"id": "f", "type": "FILE", "extension": ".csv"}, {"f": str(local)}) == [
        "inputs.f: must be a '.csv' file"]

    def broken(input_id: str, path: Path) -> str:
        raise OSError("disk full")

    with pytest.raises(InputValidationError, match="upload failed: disk full"):
        resolve_inputs(make_flow({"id": "f", "type": "FILE"}), {"f": str(local)}, upload=broken)


# -- declarations ------------------------------------------------------------------------------

@pytest.mark.parametrize(("decl", "expected"), [
    ({"type": "STRING"}, []),
    ({"type": "STRNG"}, [("type", "unknown input type 'STRNG'; did you mean STRING?")]),
    ({"type": "STRING", "validator": "("},
     [("validator", "invalid regular expression: missing ), unterminated subpattern at "
                    "position 0")]),
    ({"type": "ARRAY"}, [(None, "an ARRAY input needs 'itemType'")]),
    ({"type": "ARRAY", "itemType": "FILE"},
     [("itemType", "'FILE' is not a valid itemType; expected one of BOOL, BOOLEAN, DATE, "
                   "DATETIME, DURATION, EMAIL, FLOAT, INT, JSON, SECRET, STRING, TIME, URI, "
                   "YAML")]),
    ({"type": "SELECT"}, [(None, "a SELECT input needs 'values'")]),
    ({"type": "MULTISELECT", "values": []}, [(None, "a MULTISELECT input needs 'values'")]),
    ({"type": "SELECT", "values": "{{ kv('colors') }}"}, []),
    ({"type": "SELECT", "values": "red"}, [("values", "'values' must be a list (or an "
                                                      "expression)")]),
    ({"type": "INT", "min": "abc"}, [("min", "invalid 'min': must be an integer, got 'abc'")]),
    ({"type": "DATE", "after": "soon"},
     [("after", "invalid 'after': must be a date YYYY-MM-DD, got 'soon'")]),
    ({"type": "INT", "defaults": "x"}, [("defaults", "invalid defaults: must be an integer, "
                                                     "got 'x'")]),
    ({"type": "SELECT", "values": ["a"], "defaults": "b"},
     [("defaults", "invalid defaults: must be one of [a]")]),
    ({"type": "TIME", "defaults": 37800},
     [("defaults", "invalid defaults: must be a time HH:MM[:SS], got 37800 (quote it in "
                   "YAML)")]),
    ({"type": "FILE", "defaults": "kray://x/y"}, []),
])
def test_check_declaration(decl: dict[str, Any], expected: list[tuple[str | None, str]]) -> None:
    assert check_declaration(Input.model_validate({"id": "x", **decl})) == expected


# -- durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "td", "canonical"), [
    ("PT0S", timedelta(0), "PT0S"),
    ("PT1H30M", timedelta(hours=1, minutes=30), "PT1H30M"),
    ("P2D", timedelta(days=2), "PT48H"),
    ("P1W", timedelta(weeks=1), "PT168H"),
    ("PT1.25S", timedelta(seconds=1.25), "PT1.25S"),
    ("-PT5M", -timedelta(minutes=5), "PT-5M"),
    ("PT61S", timedelta(seconds=61), "PT1M1S"),
])
def test_durations(text: str, td: timedelta, canonical: str) -> None:
    assert parse_duration(text) == td
    assert format_duration(td) == canonical
    assert parse_duration(canonical) == td
