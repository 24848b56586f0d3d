"""Pebble's syntax on top of Jinja2's lexer, parser and code generator.

Jinja and Pebble share most of their syntax (``{{ }}``, ``{% %}``, filters, ``is`` tests). What
Pebble adds, and how it is grafted on:

* **Operators Jinja cannot lex** (``??``, ``???``, the ternary ``?``, the range ``..``): the lexer
  is Jinja's own with a wider operator regex, so string literals, comments and raw blocks are
  never touched; each new operator becomes a token of its own type.
* **Precedence**: Pebble binds ``??``/``???``/``..`` (120) tighter than ``~`` (110), and ``~``
  tighter than ``|`` (100): ``a ?? b | upper`` is ``(a ?? b) | upper`` and ``'x' ~ y | upper``
  is ``('x' ~ y) | upper``. The parser reproduces that order; ``contains`` (20) sits between
  comparisons and ``and``, the ternary ``c ? a : b`` is the loosest of all.
* **Words**: ``null``, ``equals``, ``contains``, ``elseif``, ``{% verbatim %}``.
* **Loops** over a map yield entries with ``key`` and ``value``; ``loop.index`` is 0-based.

The code generator emits calls to ``environment.kray_*`` helpers (see ``engine.KrayEnvironment``)
for the new nodes, and passes each attribute chain's source text (``outputs.t1``) to attribute
lookups so that an undefined value can name the expression that produced it.
"""

from __future__ import annotations

import re
import typing as t

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.lexer import Lexer, Token, operator_re, operators
from jinja2.parser import Parser

# Token types of the operators Pebble adds; the type is the operator itself, so that Jinja's
# "expected X, got Y" messages read naturally.
NULL_COALESCE = "??"
UNDEFINED_COALESCE = "???"
QUESTION = "?"
RANGE = ".."
_EXTRA_OPERATORS = (UNDEFINED_COALESCE, NULL_COALESCE, RANGE, QUESTION)

PEBBLE_OPERATOR_RE = re.compile(
    "(" + "|".join(re.escape(op) for op in sorted([*operators, *_EXTRA_OPERATORS], key=len,
                                                   reverse=True)) + ")")

_VERBATIM_RE = re.compile(r"(\{%[-+]?\s*)(end)?verbatim(\s*[-+]?%\})")


def preprocess(source: str) -> str:
    """Source-level rewrites: Pebble's ``{% verbatim %}`` is Jinja's ``{% raw %}``."""
    if "verbatim" not in source:
        return source
    return _VERBATIM_RE.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}raw{m.group(3)}", source)


class PebbleLexer(Lexer):
    """Jinja's lexer with Pebble's extra operators in every tag state."""

    def __init__(self, environment: t.Any) -> None:
        super().__init__(environment)
        for state, rules in self.rules.items():
            self.rules[state] = [
                rule._replace(pattern=PEBBLE_OPERATOR_RE) if rule.pattern is operator_re else rule
                for rule in rules]

    def wrap(self, stream: t.Iterable[tuple[int, str, str]], name: str | None = None,
             filename: str | None = None) -> t.Iterator[Token]:
        for lineno, token, value in stream:
            if token == "operator" and value in _EXTRA_OPERATORS:
                yield Token(lineno, value, value)
            else:
                yield from super().wrap(iter([(lineno, token, value)]), name, filename)


# ------------------------------------------------------------------------------------- nodes
# Jinja forbids new node classes, so each Pebble construct is a call of a marker attribute:
# Call(ExtensionAttribute("kray", op), args). PebbleCodeGenerator.visit_Call recognises the marker.
KRAY = "kray"
COALESCE = "coalesce"  # args: left, right, Const(keep_null): ``??`` (False) / ``???`` (True)
CONTAINS = "contains"  # args: container, item
RANGE_OP = "range"  # args: start, end (inclusive)
CONCAT = "concat"  # args: the parts of ``a ~ b ~ c``, printed as in output (true, JSON, '')
ITER = "iter"  # args: a for loop's iterable (maps iterate as key/value entries)


def kray_op(op: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.ExtensionAttribute(KRAY, op, lineno=lineno), args, [], None, None,
                      lineno=lineno)


def kray_op_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.ExtensionAttribute) \
            and node.node.identifier == KRAY:
        return node.node.name
    return None


# ------------------------------------------------------------------------------------ parser

class PebbleParser(Parser):
    """Jinja's parser with Pebble's operators, words and precedence."""

    def parse_condexpr(self) -> nodes.Expr:
        lineno = self.stream.current.lineno
        expr = super().parse_condexpr()
        if self.stream.skip_if(QUESTION):  # Pebble's ternary: cond ? a : b
            yes = self.parse_expression()
            self.stream.expect("colon")
            no = self.parse_expression()
            return nodes.CondExpr(expr, yes, no, lineno=lineno)
        return expr

    def parse_not(self) -> nodes.Expr:
        if self.stream.current.test("name:not"):
            lineno = next(self.stream).lineno
            return nodes.Not(self.parse_not(), lineno=lineno)
        lineno = self.stream.current.lineno
        left = self.parse_compare()
        while self.stream.skip_if("name:contains"):
            left = kray_op(CONTAINS, [left, self.parse_compare()], lineno)
        return left

    def parse_compare(self) -> nodes.Expr:
        lineno = self.stream.current.lineno
        expr = self.parse_math1()
        ops: list[nodes.Operand] = []
        while True:
            current = self.stream.current
            if current.type in ("eq", "ne", "lt", "lteq", "gt", "gteq"):
                next(self.stream)
                ops.append(nodes.Operand(current.type, self.parse_math1()))
            elif current.test("name:equals"):
                next(self.stream)
                ops.append(nodes.Operand("eq", self.parse_math1()))
            elif current.test("name:in"):
                next(self.stream)
                ops.append(nodes.Operand("in", self.parse_math1()))
            elif current.test("name:not") and self.stream.look().test("name:in"):
                self.stream.skip(2)
                ops.append(nodes.Operand("notin", self.parse_math1()))
            else:
                break
        return nodes.Compare(expr, ops, lineno=lineno) if ops else expr

    def parse_concat(self) -> nodes.Expr:
        # ``~`` moved up, above ``*`` and ``|`` (see parse_unary): this level is just math2.
        return self.parse_math2()

    def parse_unary(self, with_filter: bool = True) -> nodes.Expr:
        """An operand of ``*``: ``~`` chains, then ``|`` filters / ``is`` tests, left to right."""
        if not with_filter:  # the operand of unary +/-
            return super().parse_unary(with_filter=False)
        lineno = self.stream.current.lineno
        node = self._parse_tight()
        while True:
            token_type = self.stream.current.type
            if token_type == "tilde":
                parts = [node]
                while self.stream.skip_if("tilde"):
                    parts.append(self._parse_tight())
                node = kray_op(CONCAT, parts, lineno)
            elif token_type == "pipe":
                node = self.parse_filter(node)  # type: ignore[assignment]
            elif token_type == "name" and self.stream.current.value == "is":
                node = self.parse_test(node)
            elif token_type == "lparen":
                node = self.parse_call(node)
            elif token_type in (NULL_COALESCE, UNDEFINED_COALESCE, RANGE):
                node = self._parse_tight(node)
            else:
                return node

    def _parse_tight(self, left: nodes.Expr | None = None) -> nodes.Expr:
        """``??``, ``???`` and ``..``: the tightest binary operators, left associative."""
        node = left if left is not None else super().parse_unary(with_filter=False)
        while True:
            current = self.stream.current
            if current.type in (NULL_COALESCE, UNDEFINED_COALESCE):
                next(self.stream)
                right = super().parse_unary(with_filter=False)
                keep_null = nodes.Const(current.type == UNDEFINED_COALESCE)
                node = kray_op(COALESCE, [node, right, keep_null], current.lineno)
            elif current.type == RANGE:
                next(self.stream)
                right = super().parse_unary(with_filter=False)
                node = kray_op(RANGE_OP, [node, right], current.lineno)
            else:
                return node

    def parse_primary(self, with_namespace: bool = False) -> nodes.Expr:
        token = self.stream.current
        if token.test("name:null"):
            next(self.stream)
            return nodes.Const(None, lineno=token.lineno)
        return super().parse_primary(with_namespace)

    def parse_if(self) -> nodes.If:
        """``{% if %}`` accepting Pebble's ``elseif`` as well as Jinja's ``elif``."""
        node = result = nodes.If(lineno=self.stream.expect("name:if").lineno)
        while True:
            node.test = self.parse_tuple(with_condexpr=False)
            node.body = self.parse_statements(
                ("name:elif", "name:elseif", "name:else", "name:endif"))
            node.elif_ = []
            node.else_ = []
            token = next(self.stream)
            if token.test_any("name:elif", "name:elseif"):
                node = nodes.If(lineno=self.stream.current.lineno)
                result.elif_.append(node)
                continue
            if token.test("name:else"):
                result.else_ = self.parse_statements(("name:endif",), drop_needle=True)
            return result

    def parse_for(self) -> nodes.For:
        node = super().parse_for()
        node.iter = kray_op(ITER, [t.cast(nodes.Expr, node.iter)], node.iter.lineno)
        return node


# ---------------------------------------------------------------------------- code generator

def describe(node: nodes.Node) -> str | None:
    """Source text of a variable path (``outputs.t1['x'].y``), or None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = describe(node.node)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, nodes.Getitem):
        base = describe(node.node)
        if base is None:
            return None
        if isinstance(node.arg, nodes.Const):
            return f"{base}[{node.arg.value!r}]"
        inner = describe(node.arg)
        return f"{base}[{inner or '...'}]"
    return None


class PebbleCodeGenerator(CodeGenerator):
    """Jinja's code generator plus Pebble's operators and path-aware attribute lookups."""

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        op = kray_op_name(node)
        if op is None:
            super().visit_Call(node, frame, forward_caller=forward_caller)
        elif op == COALESCE:
            # Thunks: the right side runs only when needed, and an undefined error raised while
            # evaluating the left side can be caught.
            left, right, keep_null = node.args
            self.write("environment.kray_coalesce(lambda: ")
            self.visit(left, frame)
            self.write(", lambda: ")
            self.visit(right, frame)
            self.write(f", {keep_null.as_const()!r})")
        elif op == CONCAT:
            self.write("environment.kray_concat((")
            for arg in node.args:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")
        else:
            self._helper(f"kray_{op}", node.args, frame)

    def _helper(self, helper: str, args: list[nodes.Expr], frame: Frame, *extra: object) -> None:
        self.write(f"environment.{helper}(")
        for arg in args:
            self.visit(arg, frame)
            self.write(", ")
        for value in extra:
            self.write(f"{value!r}, ")
        self.write(")")

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        self._helper("kray_getattr", [node.node], frame, node.attr, describe(node.node))

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self._helper("kray_getitem", [node.node, node.arg], frame, describe(node.node))
