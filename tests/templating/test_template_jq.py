"""The native jq subset behind the ``jq`` filter."""

from __future__ import annotations

from typing import Any

import pytest

from kray.templating.jq import JqError, run

DOC: dict[str, Any] = {
    "a": {"b": [1, 2, 3]},
    "items": [{"n": "x", "v": 1}, {"n": "y", "v": 2}, {"n": "z", "v": None}],
    "k k": 5,
    "s": "Hello",
}


@pytest.mark.parametrize(("expression", "expected"), [
    (".", [DOC]),
    (".a.b", [[1, 2, 3]]),
    (".a.b[0]", [1]),
    (".a.b[-1]", [3]),
    (".a.b[1:]", [[2, 3]]),
    (".a.b[]", [1, 2, 3]),
    ('."k k"', [5]),
    ('.["k k"]', [5]),
    (".missing", [None]),
    (".missing.deeper", [None]),
    (".s[0]?", []),
    (".items[].n", ["x", "y", "z"]),
    (".items[] | .v", [1, 2, None]),
    (".a.b | length", [3]),
    (".s | length", [5]),
    ("keys", [["a", "items", "k k", "s"]]),
    (".items[0] | keys", [["n", "v"]]),
    (".a.b[0], .a.b[2]", [1, 3]),
    ("[.items[].n]", [["x", "y", "z"]]),
    (".items | map(.v)", [[1, 2, None]]),
    (".items | map(.v // 0) | add", [3]),
    (".items[] | select(.v != null and .v > 1) | .n", ["y"]),
    (".items | map(select(.n == \"x\")) | first | .v", [1]),
    (".missing // \"default\"", ["default"]),
    ("{name: .s, first: .a.b[0]}", [{"name": "Hello", "first": 1}]),
    ("{s, \"k k\"}", [{"s": "Hello", "k k": 5}]),
    ("if .a then \"yes\" else \"no\" end", ["yes"]),
    ("if .nope then 1 elif .s then 2 else 3 end", [2]),
    (".a.b | map(. * 10)", [[10, 20, 30]]),
    ("[.a.b[] | . + 1]", [[2, 3, 4]]),
    (".a | to_entries", [[{"key": "b", "value": [1, 2, 3]}]]),
    (".items | sort_by(.n) | reverse | .[0].n", ["z"]),
    (".items | group_by(.v == null) | length", [2]),
    (".s | ascii_downcase | test(\"^hel\")", [True]),
    (".a.b | join(\"-\")", ["1-2-3"]),
    ("[.a.b[] | tostring]", [["1", "2", "3"]]),
    (".a.b | contains([2])", [True]),
    ("[limit(2; .a.b[])]", [[1, 2]]),
    ("[range(3)]", [[0, 1, 2]]),
    (".a.b | has(1)", [True]),
    (".a | has(\"c\")", [False]),
    ("[.. | numbers?]", None),
])
def test_expressions(expression, expected):
    if expected is None:  # recursion works, but 'numbers' is not a builtin we know
        with pytest.raises(JqError, match="numbers/0 is not a builtin"):
            run(expression, DOC)
        return
    assert run(expression, DOC) == expected


def test_recursive_descent():
    assert run("[..]", {"a": [1]}) == [[{"a": [1]}, [1], 1]]


@pytest.mark.parametrize("expression", [
    ".a.b[] as $x | $x", "reduce .[] as $x (0; . + $x)", ".a.b |", "[.a", ".a.b[0] + \"x\"",
    ".s[]", "def f: .; f",
])
def test_errors(expression):
    with pytest.raises(JqError):
        run(expression, DOC)
