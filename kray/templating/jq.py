"""A small native jq for the ``jq`` filter (Kestra runs jackson-jq; kray ships no jq binding).

Supported: ``.``, ``..``, ``.a``, ``."a b"``, ``.a?``, ``.[0]``, ``.[-1]``, ``.["a"]``, ``.[1:3]``,
``.[]``, ``.[]?``, pipes ``|``, ``,``, ``//``, ``and``/``or``, comparisons, ``+ - * / %``,
literals, ``[...]``, ``{a: .b, "c": 1, (.k): .v, d}``, ``(...)``,
``if ... then ... elif ... else ... end``, and the builtins in ``_BUILTINS``/``_FILTER_BUILTINS``.
Not supported: variables (``as $x``), ``reduce``/``foreach``, string interpolation, assignment,
``def``. An unsupported construct is a clear error, never a wrong answer.

``run(expr, value)`` returns every output as a list, like Kestra's filter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from functools import lru_cache, partial
from typing import Any

Program = Callable[[Any], Iterator[Any]]

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.|//|==|!=|<=|>=|[.\[\]{}()|,:;?<>+\-*/%$])
""", re.VERBOSE)

_KEYWORDS = {"and", "or", "if", "then", "elif", "else", "end", "as", "reduce", "foreach", "def",
             "try", "catch", "label", "import", "include"}


class JqError(ValueError):
    """A jq expression that does not parse or fails on its input."""


def run(expression: str, value: Any) -> list[Any]:
    """All outputs of ``expression`` applied to ``value``."""
    return list(_compile(expression)(value))


@lru_cache(maxsize=256)
def _compile(expression: str) -> Program:
    return _Parser(expression).parse()


def _type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _truthy(v: Any) -> bool:
    return v is not None and v is not False


def _sort_key(v: Any) -> tuple[int, Any]:
    order = {"null": 0, "boolean": 1, "number": 2, "string": 3, "array": 4, "object": 5}
    kind = _type(v)
    if kind == "array":
        return order[kind], [_sort_key(x) for x in v]
    if kind == "object":
        return order[kind], sorted((k, _sort_key(x)) for k, x in v.items())
    return order.get(kind, 6), v


def _index(v: Any, key: Any) -> Any:
    if v is None:
        return None
    if isinstance(key, str) and isinstance(v, dict):
        return v.get(key)
    if isinstance(key, (int, float)) and not isinstance(key, bool) and isinstance(v, list):
        i = int(key)
        return v[i] if -len(v) <= i < len(v) else None
    raise JqError(f"cannot index {_type(v)} with {_type(key)}")


def _iterate(v: Any) -> Iterator[Any]:
    if isinstance(v, list):
        yield from v
    elif isinstance(v, dict):
        yield from v.values()
    else:
        raise JqError(f"cannot iterate over {_type(v)}")


def _recurse(v: Any) -> Iterator[Any]:
    yield v
    if isinstance(v, (list, dict)):
        for child in (v if isinstance(v, list) else v.values()):
            yield from _recurse(child)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        if a is None:
            return b
        if b is None:
            return a
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **b}
        if type(a) is type(b) or (_type(a) == _type(b) == "number"):
            return a + b
    elif op == "-":
        if isinstance(a, list) and isinstance(b, list):
            return [x for x in a if x not in b]
        if _type(a) == _type(b) == "number":
            return a - b
    elif _type(a) == _type(b) == "number":
        if op == "*":
            return a * b
        if b == 0:
            raise JqError(f"{a} cannot be divided by zero")
        if op == "/":
            result = a / b
            return int(result) if float(result).is_integer() else result
        return int(a) % int(b)
    elif op == "/" and isinstance(a, str) and isinstance(b, str):
        return a.split(b)
    elif op == "*" and isinstance(a, dict) and isinstance(b, dict):
        return {**a, **b}
    raise JqError(f"{_type(a)} and {_type(b)} cannot be combined with '{op}'")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: _sort_key(a) < _sort_key(b), "<=": lambda a, b: _sort_key(a) <= _sort_key(b),
    ">": lambda a, b: _sort_key(a) > _sort_key(b), ">=": lambda a, b: _sort_key(a) >= _sort_key(b),
}


def _length(v: Any) -> Any:
    if v is None:
        return 0
    if isinstance(v, bool):
        raise JqError("boolean has no length")
    if isinstance(v, (int, float)):
        return abs(v)
    return len(v)


def _tostring(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _entries(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, dict):
        raise JqError(f"{_type(v)} has no entries")
    return [{"key": k, "value": x} for k, x in v.items()]


def _from_entries(v: Any) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for e in v:
        key = next((e[k] for k in ("key", "k", "name", "Name", "Key", "K") if k in e), None)
        out[key if isinstance(key, str) else _tostring(key)] = next(
            (e[k] for k in ("value", "v", "Value", "V") if k in e), None)
    return out


def _flatten(v: list[Any], depth: float = math.inf) -> list[Any]:
    out: list[Any] = []
    for x in v:
        if isinstance(x, list) and depth > 0:
            out.extend(_flatten(x, depth - 1))
        else:
            out.append(x)
    return out


# Builtins of arity 0: input -> one output.
_BUILTINS: dict[str, Callable[[Any], Any]] = {
    "length": _length,
    "keys": lambda v: sorted(v) if isinstance(v, dict) else list(range(len(v))),
    "keys_unsorted": lambda v: list(v) if isinstance(v, dict) else list(range(len(v))),
    "not": lambda v: not _truthy(v), "type": _type,
    "add": lambda v: _add_all(list(_iterate(v))),
    "tostring": _tostring, "tojson": lambda v: json.dumps(v, separators=(",", ":")),
    "fromjson": lambda v: json.loads(v),
    "tonumber": lambda v: v if isinstance(v, (int, float)) else (
        int(v) if re.fullmatch(r"-?\d+", v.strip()) else float(v)),
    "to_entries": _entries, "from_entries": _from_entries,
    "sort": lambda v: sorted(v, key=_sort_key), "unique": lambda v: _unique(v, lambda x: x),
    "reverse": lambda v: v[::-1] if v is not None else [],
    "min": lambda v: min(v, key=_sort_key) if v else None,
    "max": lambda v: max(v, key=_sort_key) if v else None,
    "flatten": _flatten, "floor": math.floor,
    "ascii_downcase": lambda v: v.lower(), "ascii_upcase": lambda v: v.upper(),
    "any": lambda v: any(_truthy(x) for x in v), "all": lambda v: all(_truthy(x) for x in v),
    "first": lambda v: v[0] if v else None, "last": lambda v: v[-1] if v else None,
}


def _add_all(items: list[Any]) -> Any:
    total: Any = None
    for x in items:
        total = _arith("+", total, x)
    return total


def _unique(v: list[Any], key: Callable[[Any], Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for x in sorted(v, key=lambda x: _sort_key(key(x))):
        seen.setdefault(json.dumps(key(x), sort_keys=True, default=str), x)
    return list(seen.values())


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                raise JqError(f"jq: unexpected character {text[pos]!r} at {pos + 1} in '{text}'")
            kind = m.lastgroup or ""
            if kind != "ws":
                self.tokens.append((kind, m.group()))
            pos = m.end()
        self.i = 0

    # -- token helpers
    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, text = self.tokens[self.i]
        return value is None or (text == value and kind in ("op", "ident"))

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise JqError(f"jq: unexpected end of '{self.text}'")
        tok = self.tokens[self.i]
        if value is not None and tok[1] != value:
            raise JqError(f"jq: expected '{value}' but found '{tok[1]}' in '{self.text}'")
        self.i += 1
        return tok

    def parse(self) -> Program:
        prog = self.pipe()
        if self.i < len(self.tokens):
            raise JqError(f"jq: unexpected '{self.tokens[self.i][1]}' in '{self.text}'")
        return prog

    # -- grammar, loosest first
    def pipe(self) -> Program:
        left = self.comma()
        while self.peek("|"):
            self.take()
            left = _pipe(left, self.comma())
        return left

    def comma(self) -> Program:
        left = self.alternative()
        while self.peek(","):
            self.take()
            left = _comma(left, self.alternative())
        return left

    def alternative(self) -> Program:
        left = self.logic_or()
        while self.peek("//"):
            self.take()
            left = _alternative(left, self.logic_or())
        return left

    def logic_or(self) -> Program:
        left = self.logic_and()
        while self.peek("or"):
            self.take()
            left = _bool_op(left, self.logic_and(), is_and=False)
        return left

    def logic_and(self) -> Program:
        left = self.compare()
        while self.peek("and"):
            self.take()
            left = _bool_op(left, self.compare(), is_and=True)
        return left

    def compare(self) -> Program:
        left = self.additive()
        for op in _COMPARE:
            if self.peek(op):
                self.take()
                return _binop(left, self.additive(), _COMPARE[op])
        return left

    def additive(self) -> Program:
        left = self.multiplicative()
        while self.peek("+") or self.peek("-"):
            op = self.take()[1]
            left = _binop(left, self.multiplicative(), partial(_arith, op))
        return left

    def multiplicative(self) -> Program:
        left = self.postfix()
        while self.peek("*") or self.peek("/") or self.peek("%"):
            op = self.take()[1]
            left = _binop(left, self.postfix(), partial(_arith, op))
        return left

    def postfix(self) -> Program:
        prog = self.primary()
        while True:
            if self.i < len(self.tokens) and self.tokens[self.i][0] == "field":
                prog = _pipe(prog, _field(self.take()[1][1:]))
            elif self.peek("["):
                prog = _pipe(prog, self.suffix())
            elif self.peek(".") and self.i + 1 < len(self.tokens) and \
                    self.tokens[self.i + 1][0] == "str":
                self.take()
                prog = _pipe(prog, self.suffix())
            elif self.peek("?"):
                self.take()
                prog = _optional(prog)
            else:
                return prog

    def suffix(self) -> Program:
        """After a dot or at a ``[``: ``"name"``, ``[]``, ``[expr]``, ``[a:b]``."""
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "str":
            return _field(json.loads(self.take()[1]))
        self.take("[")
        if self.peek("]"):
            self.take()
            return _iterate_prog
        start = None if self.peek(":") else self.pipe()
        if self.peek(":"):
            self.take()
            end = None if self.peek("]") else self.pipe()
            self.take("]")
            return _slice(start, end)
        self.take("]")
        assert start is not None
        return _index_prog(start)

    def primary(self) -> Program:  # noqa: C901 - one branch per form
        kind, text = self.take()
        if kind == "field":
            return _field(text[1:])
        if kind == "num":
            value = float(text) if any(c in text for c in ".eE") else int(text)
            return _const(value)
        if kind == "str":
            return _const(json.loads(text))
        if text == "..":
            return _recurse
        if text == ".":
            if self.peek("[") or (self.i < len(self.tokens) and self.tokens[self.i][0] == "str"):
                return self.suffix()
            return _identity
        if text == "(":
            inner = self.pipe()
            self.take(")")
            return inner
        if text == "[":
            if self.peek("]"):
                self.take()
                return _const_factory(list)
            inner = self.pipe()
            self.take("]")
            return lambda v: iter([list(inner(v))])
        if text == "{":
            return self.object()
        if text == "-":
            operand = self.postfix()
            return lambda v: (-x for x in operand(v))
        if kind == "ident":
            return self.call(text)
        raise JqError(f"jq: unexpected '{text}' in '{self.text}'")

    def object(self) -> Program:
        entries: list[tuple[Program, Program]] = []
        while not self.peek("}"):
            kind, text = self.take()
            if kind in ("ident", "field") and not text.startswith("."):
                key: Program = _const(text)
                default_value = _field(text)
            elif kind == "str":
                key = _const(json.loads(text))
                default_value = _field(json.loads(text))
            elif text == "(":
                key = self.pipe()
                self.take(")")
                default_value = _identity
            else:
                raise JqError(f"jq: unexpected '{text}' in an object in '{self.text}'")
            value = default_value
            if self.peek(":"):
                self.take()
                value = self.alternative()
            entries.append((key, value))
            if not self.peek("}"):
                self.take(",")
        self.take("}")
        return _object(entries)

    def call(self, name: str) -> Program:
        if name in ("true", "false", "null"):
            return _const({"true": True, "false": False, "null": None}[name])
        if name == "if":
            return self.conditional()
        if name in _KEYWORDS:
            raise JqError(f"jq: '{name}' is not supported by kray's jq")
        args: list[Program] = []
        if self.peek("("):
            self.take()
            args.append(self.pipe())
            while self.peek(";"):
                self.take()
                args.append(self.pipe())
            self.take(")")
        return _builtin(name, args, self.text)

    def conditional(self) -> Program:
        cond = self.pipe()
        self.take("then")
        then = self.pipe()
        if self.peek("elif"):
            self.take()
            other = self.conditional()
            return _if(cond, then, other)
        other = _identity
        if self.peek("else"):
            self.take()
            other = self.pipe()
        self.take("end")
        return _if(cond, then, other)


# ------------------------------------------------------------------------- program builders

def _identity(v: Any) -> Iterator[Any]:
    yield v


def _iterate_prog(v: Any) -> Iterator[Any]:
    return _iterate(v)


def _const(value: Any) -> Program:
    return lambda v: iter([value])


def _const_factory(factory: Callable[[], Any]) -> Program:
    return lambda v: iter([factory()])


def _field(name: str) -> Program:
    return lambda v: iter([_index(v, name)])


def _index_prog(key: Program) -> Program:
    return lambda v: (_index(v, k) for k in list(key(v)))


def _slice(start: Program | None, end: Program | None) -> Program:
    def prog(v: Any) -> Iterator[Any]:
        if v is None:
            yield None
            return
        if not isinstance(v, (list, str)):
            raise JqError(f"cannot slice {_type(v)}")
        for s in (start(v) if start else [None]):
            for e in (end(v) if end else [None]):
                yield v[None if s is None else int(s):None if e is None else int(e)]
    return prog


def _pipe(left: Program, right: Program) -> Program:
    return lambda v: (out for mid in left(v) for out in right(mid))


def _comma(left: Program, right: Program) -> Program:
    def prog(v: Any) -> Iterator[Any]:
        yield from left(v)
        yield from right(v)
    return prog


def _alternative(left: Program, right: Program) -> Program:
    def prog(v: Any) -> Iterator[Any]:
        try:
            found = [x for x in left(v) if _truthy(x)]
        except JqError:
            found = []
        yield from found if found else right(v)
    return prog


def _bool_op(left: Program, right: Program, *, is_and: bool) -> Program:
    def prog(v: Any) -> Iterator[Any]:
        for a in left(v):
            if is_and and not _truthy(a):
                yield False
            elif not is_and and _truthy(a):
                yield True
            else:
                yield from (_truthy(b) for b in right(v))
    return prog


def _binop(left: Program, right: Program, fn: Callable[[Any, Any], Any]) -> Program:
    return lambda v: (fn(a, b) for b in list(right(v)) for a in list(left(v)))


def _optional(prog: Program) -> Program:
    def wrapped(v: Any) -> Iterator[Any]:
        try:
            results = list(prog(v))
        except JqError:
            return
        yield from results
    return wrapped


def _object(entries: list[tuple[Program, Program]]) -> Program:
    def prog(v: Any) -> Iterator[Any]:
        partials: list[dict[Any, Any]] = [{}]
        for key_prog, value_prog in entries:
            keys = list(key_prog(v))
            values = list(value_prog(v))
            partials = [{**p, k: x} for p in partials for k in keys for x in values]
            for k in keys:
                if not isinstance(k, str):
                    raise JqError(f"object keys must be strings, not {_type(k)}")
        yield from partials
    return prog


def _if(cond: Program, then: Program, other: Program) -> Program:
    return lambda v: (out for c in cond(v) for out in (then(v) if _truthy(c) else other(v)))


def _builtin(name: str, args: list[Program], text: str) -> Program:  # noqa: C901
    arity = len(args)
    if arity == 0 and name == "empty":
        return lambda v: iter(())
    if arity == 0 and name == "values":
        return lambda v: iter([v] if v is not None else [])
    if arity == 0 and name in _BUILTINS:
        fn = _BUILTINS[name]

        def call0(v: Any) -> Iterator[Any]:
            try:
                yield fn(v)
            except JqError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise JqError(f"jq: {name} cannot be applied to {_type(v)}: {exc}") from None
        return call0
    if arity == 1:
        (arg,) = args
        unary: dict[str, Callable[[Any], Iterator[Any]]] = {
            "select": lambda v: (v for c in arg(v) if _truthy(c)),
            "map": lambda v: iter([[y for x in _iterate(v) for y in arg(x)]]),
            "has": lambda v: (k in v if isinstance(v, dict) else 0 <= k < len(v) for k in arg(v)),
            "first": lambda v: iter(list(arg(v))[:1]),
            "last": lambda v: iter(list(arg(v))[-1:]),
            "sort_by": lambda v: iter([sorted(v, key=lambda x: _sort_key(list(arg(x))))]),
            "group_by": lambda v: iter([_group_by(v, arg)]),
            "with_entries": lambda v: iter([_from_entries([y for e in _entries(v)
                                                           for y in arg(e)])]),
            "join": lambda v: (s.join(_tostring(x) if x is not None else "" for x in v)
                               for s in arg(v)),
            "split": lambda v: (v.split(s) for s in arg(v)),
            "startswith": lambda v: (v.startswith(s) for s in arg(v)),
            "endswith": lambda v: (v.endswith(s) for s in arg(v)),
            "ltrimstr": lambda v: (v[len(s):] if isinstance(v, str) and v.startswith(s) else v
                                   for s in arg(v)),
            "rtrimstr": lambda v: (v[:-len(s)] if isinstance(v, str) and s and v.endswith(s)
                                   else v for s in arg(v)),
            "test": lambda v: (re.search(p, v) is not None for p in arg(v)),
            "contains": lambda v: (_contains(v, x) for x in arg(v)),
            "range": lambda v: (i for n in arg(v) for i in range(int(n))),
            "flatten": lambda v: (_flatten(v, d) for d in arg(v)),
            "any": lambda v: iter([any(_truthy(c) for x in v for c in arg(x))]),
            "all": lambda v: iter([all(_truthy(c) for x in v for c in arg(x))]),
        }
        if name in unary:
            return unary[name]
    if arity == 2 and name == "limit":
        count, gen = args
        return lambda v: (x for n in count(v) for _, x in zip(range(int(n)), gen(v), strict=False))
    raise JqError(f"jq: {name}/{arity} is not a builtin kray's jq knows (in '{text}')")


def _group_by(v: list[Any], key: Program) -> list[list[Any]]:
    groups: dict[str, list[Any]] = {}
    for x in sorted(v, key=lambda x: _sort_key(list(key(x)))):
        groups.setdefault(json.dumps(list(key(x)), sort_keys=True, default=str), []).append(x)
    return list(groups.values())


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return all(k in a and _contains(a[k], x) for k, x in b.items())
    if isinstance(a, list) and isinstance(b, list):
        return all(any(_contains(x, y) for x in a) for y in b)
    if isinstance(a, str) and isinstance(b, str):
        return b in a
    return bool(a == b)
