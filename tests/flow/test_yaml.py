from __future__ import annotations

import pytest

from kray.errors import FlowValidationError
from kray.flow.yaml import format_path, load_yaml

SOURCE = """\
# a comment
id: hello
tasks:
  - id: t1
    message: hi
  - id: t2
    nested:
      deep: [1, 2]
"""


def test_positions_of_keys_and_values() -> None:
    loaded = load_yaml(SOURCE)
    pos = loaded.positions
    assert pos.key(("id",)) == (2, 1)
    assert pos.value(("id",)) == (2, 5)
    assert pos.key(("tasks", 1)) == (6, 5)  # a list item: where the item starts
    assert pos.key(("tasks", 0, "message")) == (5, 5)
    assert pos.value(("tasks", 0, "message")) == (5, 14)
    assert pos.value(("tasks", 1, "nested", "deep", 1)) == (8, 17)
    assert pos.key(()) == (2, 1)


def test_missing_path_falls_back_to_nearest_parent() -> None:
    pos = load_yaml(SOURCE).positions
    assert pos.key(("tasks", 1, "nested", "nope", "deeper")) == (7, 5)
    assert pos.value(("tasks", 0, "absent")) == (4, 5)
    assert pos.key(("nothing",)) == (2, 1)


def test_data_is_plain_and_timestamps_stay_strings() -> None:
    loaded = load_yaml("d: 2024-01-15\nt: 2024-01-15T10:00:00Z\nn: 3\nb: true\n")
    assert loaded.data == {"d": "2024-01-15", "t": "2024-01-15T10:00:00Z", "n": 3, "b": True}


def test_merge_keys_point_at_the_anchor_and_own_keys_win() -> None:
    src = "base: &b\n  x: 1\n  y: 2\nm:\n  <<: *b\n  y: 3\n"
    loaded = load_yaml(src)
    assert loaded.data["m"] == {"x": 1, "y": 3}
    assert loaded.positions.key(("m", "x")) == (2, 3)
    assert loaded.positions.key(("m", "y")) == (6, 3)
    assert loaded.issues == []


def test_duplicate_key_is_an_issue() -> None:
    loaded = load_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", "f.yaml")
    assert [(i.line, i.column, i.path, i.message) for i in loaded.issues] == [
        (4, 3, "b.c", "duplicate key 'c'")]
    assert loaded.data == {"a": 1, "b": {"c": 2}}


def test_non_string_keys_are_constructed() -> None:
    loaded = load_yaml("cases:\n  1: a\n  2.5: b\n")
    assert loaded.data == {"cases": {1: "a", 2.5: "b"}}
    assert loaded.positions.key(("cases", 1)) == (2, 3)
    assert loaded.positions.key(("cases", 2.5)) == (3, 3)


@pytest.mark.parametrize(("source", "line", "column", "fragment"), [
    ("a: [1, 2\nb: 3\n", 2, 2, "did not find expected ',' or ']'"),
    ("a: b: c\n", 1, 5, "mapping values are not allowed"),
    ("a:\n  - x\n y: 1\n", 3, 2, "did not find expected key"),
])
def test_syntax_error_has_the_mark(source: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        load_yaml(source, "f.yaml")
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.column) == ("f.yaml", line, column)
    assert issue.message.startswith("invalid YAML: ")
    assert fragment in issue.message


def test_empty_document_is_none() -> None:
    assert load_yaml("").data is None
    assert load_yaml("# only a comment\n").data is None


def test_recursive_alias_does_not_hang() -> None:
    loaded = load_yaml("a: &x [1, *x]\n")
    assert loaded.data["a"][1] is loaded.data["a"]


def test_format_path() -> None:
    assert format_path(("tasks", 1, "retry", "maxAttempt")) == "tasks[1].retry.maxAttempt"
    assert format_path(("cases", "a", 0)) == "cases.a[0]"
    assert format_path(()) == ""


@pytest.mark.parametrize("source", [
    "a: 1\nb: [1, 2.5, true, null, ~, 'x', \"y\", 0x1F, 1.0e+3]\nc: {d: {e: [f, {g: h}]}}\n",
    "base: &b {x: 1, y: 2}\nother: &o {y: 9, z: 3}\nm:\n  <<: [*b, *o]\n  w: 0\n",
    "base: &b {x: 1}\nm:\n  <<: *b\n  x: 2\nn: *b\n",
    "s: !!set {a, b}\nt: !!str 123\nu: !!binary aGVsbG8=\nv: !!omap [{a: 1}, {b: 2}]\n",
    "~: null key\n1: int key\n2.5: float key\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
])
def test_data_equals_pyyaml_safe_load(source: str) -> None:
    import yaml

    assert load_yaml(source).data == yaml.safe_load(source)


def test_merge_of_several_anchors_earlier_wins() -> None:
    loaded = load_yaml("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nm:\n  <<: [*a, *b]\n  z: 3\n")
    assert loaded.data["m"] == {"x": 1, "y": 1, "z": 3}
    assert list(loaded.data["m"]) == ["x", "y", "z"]
    assert loaded.positions.key(("m", "y")) == (1, 14)
    assert loaded.positions.key(("m", "z")) == (5, 3)


def test_alias_bomb_is_linear() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    loaded = load_yaml("\n".join(lines) + "\n")  # 10**30 leaves if expanded
    assert loaded.data["a29"][0] is loaded.data["a28"]


def test_unhashable_key_is_a_located_error() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_yaml("a: 1\n? [x, y]\n: 2\n", "f.yaml")
    [issue] = info.value.issues
    assert (issue.line, issue.column) == (2, 3)
    assert "found unhashable key" in issue.message


def test_merge_of_a_scalar_is_a_located_error() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_yaml("m:\n  <<: 3\n", "f.yaml")
    assert "expected a mapping for merging" in info.value.issues[0].message


def test_plain_scalars_are_typed_as_in_yaml_1_2() -> None:
    data = load_yaml("""\
s: [yes, no, on, off, tRue, 010, "10:30", 10:30, 1.2.3, nil, 2024-01-15, =]
b: [true, False, TRUE]
i: [1, -2, +3, 0, 0x1F, 0o17, 1_000]
f: [1.5, .5, 1., -1.5e3, 1e3, .inf]
n: [~, null, Null, NULL, ""]
e:
""").data
    assert data["s"] == ["yes", "no", "on", "off", "tRue", "010", "10:30", "10:30", "1.2.3",
                         "nil", "2024-01-15", "="]
    assert data["b"] == [True, False, True]
    assert data["i"] == [1, -2, 3, 0, 31, 15, 1000]
    assert all(type(v) is int for v in data["i"])
    assert data["f"] == [1.5, 0.5, 1.0, -1500.0, 1000.0, float("inf")]
    assert data["n"] == [None, None, None, None, ""] and data["e"] is None
