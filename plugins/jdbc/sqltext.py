"""SQL text without a parser: a small lexer that knows where strings, quoted names and comments
begin and end, so that scripts can be split into statements and string literals found.

Three dialects differ in what they quote: ``postgres`` (``E'...'`` escapes, ``$tag$`` strings),
``mysql`` (backslash escapes, backticks, ``#`` comments) and ``duckdb`` (like postgres).
Anything the lexer does not recognise is a one-character ``punct`` token, so it never fails:
at worst a statement is not split where a real parser would split it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["postgres", "mysql", "duckdb"]

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # space, comment, string, quoted (a quoted name), word, punct
    text: str
    start: int


def tokenize(sql: str, dialect: Dialect = "postgres") -> Iterator[Token]:
    """The tokens of ``sql``, covering it entirely: joining their texts gives ``sql`` back."""
    mysql = dialect == "mysql"
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            end = _SPACE.match(sql, i).end()  # type: ignore[union-attr]
            yield Token("space", sql[i:end], i)
        elif sql.startswith("--", i) or (mysql and c == "#"):
            end = sql.find("\n", i)
            end = n if end < 0 else end + 1
            yield Token("comment", sql[i:end], i)
        elif sql.startswith("/*", i):
            end = _block_comment_end(sql, i, nested=not mysql)
            yield Token("comment", sql[i:end], i)
        elif c == "'":
            end = _quoted_end(sql, i, "'", backslash=mysql)
            yield Token("string", sql[i:end], i)
        elif c == '"':
            end = _quoted_end(sql, i, '"', backslash=mysql)
            yield Token("string" if mysql else "quoted", sql[i:end], i)
        elif c == "`" and mysql:
            end = _quoted_end(sql, i, "`", backslash=False)
            yield Token("quoted", sql[i:end], i)
        elif c == "$" and not mysql and (m := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(m.group(), m.end())
            end = n if close < 0 else close + len(m.group())
            yield Token("string", sql[i:end], i)
        elif c in "eE" and not mysql and sql.startswith("'", i + 1):
            end = _quoted_end(sql, i + 1, "'", backslash=True)
            yield Token("string", sql[i:end], i)
        elif m := _WORD.match(sql, i):
            end = m.end()
            yield Token("word", sql[i:end], i)
        else:
            end = i + 1
            yield Token("punct", c, i)
        i = end


def _quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    """The index just past the quoted text opening at ``start`` (doubled quotes escape; with
    ``backslash`` a backslash escapes too). An unterminated quote runs to the end."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _block_comment_end(sql: str, start: int, *, nested: bool) -> int:
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth = depth + 1 if nested or depth == 0 else depth
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def split_statements(sql: str, dialect: Dialect = "postgres") -> list[str]:
    """The statements of a script, split on top-level semicolons, without the semicolons.
    Statements holding only comments and spaces are dropped."""
    statements: list[str] = []
    current: list[str] = []
    meaningful = False
    for tok in tokenize(sql, dialect):
        if tok.kind == "punct" and tok.text == ";":
            if meaningful:
                statements.append("".join(current).strip())
            current, meaningful = [], False
            continue
        current.append(tok.text)
        meaningful = meaningful or tok.kind not in ("space", "comment")
    if meaningful:
        statements.append("".join(current).strip())
    return statements


def first_keyword(statement: str, dialect: Dialect = "postgres") -> str:
    """The statement's first word, upper-cased (``"SELECT"``, ``"WITH"``...); ``""`` if none.
    Leading comments and opening parentheses are skipped."""
    for tok in tokenize(statement, dialect):
        if tok.kind in ("space", "comment") or tok.text == "(":
            continue
        return tok.text.upper() if tok.kind == "word" else ""
    return ""


def has_placeholders(statement: str, dialect: Dialect = "postgres") -> bool:
    """Whether the statement holds a ``%s`` or ``%(name)s`` placeholder outside strings and
    comments: only then does it get the task's ``parameters`` (the DB-API drivers' rule)."""
    toks = [t for t in tokenize(statement, dialect) if t.kind not in ("space", "comment")]
    for a, b in zip(toks, toks[1:]):
        if a.text == "%" and b.start == a.start + 1 and b.text in ("(", "s"):
            return True
    return False


def quote_literal(text: str) -> str:
    """``text`` as a standard SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
