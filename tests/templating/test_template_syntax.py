"""Pebble syntax on Jinja: ??, ???, ternary, contains, equals, .., null, elseif, verbatim, loops."""

from __future__ import annotations

import pytest

from kray.errors import TemplateError


@pytest.mark.parametrize(("template", "expected"), [
    # ?? : left when defined and not null
    ("{{ inputs.name ?? 'd' }}", "World"),
    ("{{ inputs.nothing ?? 'd' }}", "d"),
    ("{{ outputs.nope.value ?? 'd' }}", "d"),
    ("{{ nope ?? 'd' }}", "d"),
    ("{{ inputs.empty ?? 'd' }}|", "|"),  # empty string is not null
    ("{{ inputs.flag ?? 'd' }}", "true"),
    ("{{ 0 ?? 'd' }}", "0"),
    # ??? : left when defined, even null
    ("{{ inputs.nothing ??? 'd' }}|", "|"),
    ("{{ outputs.nope.value ??? 'd' }}", "d"),
    ("{{ inputs.name ??? 'd' }}", "World"),
    # chains, left to right
    ("{{ a ?? b ?? 'c' }}", "c"),
    ("{{ a ?? inputs.nothing ?? inputs.name }}", "World"),
    ("{{ a ??? inputs.nothing ?? 'x' }}", "x"),
    ("{{ a ?? inputs.nothing ??? 'x' }}|", "|"),
    # precedence: tighter than ~, |, + and comparisons (Pebble gives ?? 120, ~ 110, | 100)
    ("{{ nope ?? 'abc' | upper }}", "ABC"),
    ("{{ inputs.name ?? 'abc' | upper }}", "WORLD"),
    ("{{ 'p-' ~ nope ?? 'd' ~ '-s' }}", "p-d-s"),
    ("{{ nope ?? 1 + 1 }}", "2"),
    ("{{ inputs.count ?? 0 + 1 }}", "4"),
    ("{{ nope ?? 2 == 2 }}", "true"),
    ("{{ nope ?? false or true }}", "true"),
    ("{{ (nope ?? 'x') ~ 'y' }}", "xy"),
    ("{{ inputs.name | lower ?? 'd' }}", "world"),
    ("{{ nope | upper ?? 'fallback' }}", "fallback"),  # the filter's undefined error is caught
    ("{{ -nope ?? 5 }}", "5"),
    ("{% set x = nope ?? 'set' %}{{ x }}", "set"),
    ("{% if nope ?? true %}yes{% endif %}", "yes"),
    ("{{ [nope ?? 1, 2] }}", "[1,2]"),
    ("{{ f(nope ?? 'arg') }}", "ARG"),
])
def test_coalescing(engine, variables, template, expected):
    variables = {**variables, "f": str.upper}
    assert engine.render(template, variables) == expected


def test_coalescing_evaluates_the_right_side_only_when_needed(engine, variables):
    # secret() without services raises: it must not run when the left side is usable.
    assert engine.render("{{ inputs.name ?? secret('X') }}", variables) == "World"
    with pytest.raises(TemplateError, match="not available"):
        engine.render("{{ nope ?? secret('X') }}", variables)


def test_coalescing_does_not_hide_other_errors(engine, variables):
    with pytest.raises(TemplateError, match="division by zero"):
        engine.render("{{ (1 / 0) ?? 'x' }}", variables)


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ inputs.count > 2 ? 'big' : 'small' }}", "big"),
    ("{{ inputs.count > 5 ? 'big' : 'small' }}", "small"),
    ("{{ inputs.flag ? inputs.count ? 'a' : 'b' : 'c' }}", "a"),
    ("{{ {'k': inputs.flag ? 1 : 2} }}", '{"k":1}'),
    ("{{ 'x' if inputs.flag else 'y' }}", "x"),  # Jinja's inline if still works
    ("{{ '?' ~ 'a??b' ~ \"c ? d : e\" }}", "?a??bc ? d : e"),  # strings are never touched
    ("{# ?? comment #}{{ 1 }}", "1"),
])
def test_ternary_and_question_marks(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ inputs.items contains 2 }}", "true"),
    ("{{ inputs.items contains 9 }}", "false"),
    ("{{ inputs.items contains [1, 3] }}", "true"),  # contains all
    ("{{ inputs.items contains [1, 9] }}", "false"),
    ("{{ 'abcdef' contains 'cd' }}", "true"),
    ("{{ inputs.map contains 'a' }}", "true"),  # a map contains its keys
    ("{{ inputs.map contains 1 }}", "false"),
    ("{{ not (inputs.items contains 9) }}", "true"),
    ("{{ inputs.items contains 1 and inputs.flag }}", "true"),
    ("{{ 'a' equals 'a' }}", "true"),
    ("{{ 1 equals 2 }}", "false"),
    ("{{ 2 in inputs.items }}", "true"),
    ("{{ 9 not in inputs.items }}", "true"),
])
def test_contains_equals_in(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ null }}|{{ null is null }}|{{ inputs.nothing == null }}", "|true|true"),
    ("{{ inputs.name is null }}", "false"),
    ("{{ inputs.empty is empty }}|{{ [] is empty }}|{{ inputs.items is empty }}",
     "true|true|false"),
    ("{{ 3 is odd }}|{{ 4 is even }}", "true|true"),
    ("{{ '{\"a\": 1}' is json }}|{{ 'nope' is json }}", "true|false"),
    ("{{ inputs.map is map }}|{{ inputs.items is iterable }}", "true|true"),
    ("{{ inputs.nothing is not null }}", "false"),
])
def test_pebble_tests(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


def test_tests_on_undefined_raise_except_defined(engine, variables):
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        engine.render("{{ nope is null }}", variables)
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        engine.render("{{ nope is empty }}", variables)


@pytest.mark.parametrize(("template", "expected"), [
    ("{% for i in 1..4 %}{{ i }}{% endfor %}", "1234"),
    ("{{ 0..2 }}", "[0,1,2]"),
    ("{% for c in 'a'..'c' %}{{ c }}{% endfor %}", "abc"),
    ("{% for i in 3..1 %}{{ i }}{% endfor %}", ""),
    ("{% for i in range(0, 2) %}{{ i }}{% endfor %}", "012"),  # Pebble's range is inclusive
    ("{% for i in range(0, 6, 2) %}{{ i }}{% endfor %}", "0246"),
    ("{% for i in range(start=3, end=1, increment=-1) %}{{ i }}{% endfor %}", "321"),
    ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
    ("{{ 1.5 + 1 }}", "2.5"),  # floats still lex
])
def test_ranges(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{% for e in inputs.map %}{{ e.key }}={{ e.value }};{% endfor %}", "a=1;b=2;"),
    ("{% for k, v in inputs.map %}{{ k }}{{ v }}{% endfor %}", "a1b2"),
    ("{% for e in inputs.map %}{{ e }},{% endfor %}", "a=1,b=2,"),
    ("{% for x in inputs.items %}{{ loop.index }}{{ loop.revindex }}{% endfor %}", "021120"),
    ("{% for x in inputs.items %}{{ loop.first }}{{ loop.last }}{{ loop.length }},{% endfor %}",
     "truefalse3,falsefalse3,falsetrue3,"),
    ("{% for x in inputs.items %}{{ loop.index0 }}{% endfor %}", "012"),
    ("{% for x in [] %}a{% else %}empty{% endfor %}", "empty"),
])
def test_for_loops(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{% if inputs.count == 1 %}a{% elseif inputs.count == 3 %}b{% else %}c{% endif %}", "b"),
    ("{% if false %}a{% elif true %}b{% endif %}", "b"),
    ("{% verbatim %}{{ not rendered }}{% endverbatim %}", "{{ not rendered }}"),
    ("{% raw %}{{ x ?? y }}{% endraw %}", "{{ x ?? y }}"),
    ("{% set greeting = 'hi' %}{{ greeting }}", "hi"),
    ("{{- ' trimmed ' -}}  ", " trimmed "),
    ("{{ 'a' ~ 'b' | upper }}", "AB"),  # Pebble: ~ binds tighter than |
    ("{{ 'a' | upper ~ 'b' }}", "Ab"),
    ("{{ 2 * 'ab' ~ 'c' | length }}", "6"),
    ("{{ 10 - 2 - 3 }}|{{ 2 + 3 * 4 }}|{{ -2 | abs }}", "5|14|2"),
    ("{{ inputs['name'] }}|{{ inputs.items[1] }}|{{ inputs.items.0 }}", "World|2|1"),
])
def test_statements_and_precedence(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ 7 / 2 }}|{{ -7 / 2 }}|{{ 7.0 / 2 }}|{{ 7 / 2.0 }}", "3|-3|3.5|3.5"),
    ("{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 7.5 % 2 }}|{{ -7.5 % 2 }}", "1|-1|1|1.5|-1.5"),
    ("{{ 7 // 2 }}|{{ 2 ** 3 }}|{{ 2 * 3 }}|{{ 5 - 7 }}", "3|8|6|-2"),
    ("{{ 'a' + 1 }}|{{ 1 + 'a' }}|{{ 'n=' + true }}", "a1|1a|n=true"),
    ("{{ [1] + 2 }}|{{ [1] + [2, 3] }}|{{ [1, 2, 3] - 2 }}|{{ [1, 2, 3] - [1, 3] }}",
     "[1,2]|[1,2,3]|[1,3]|[2]"),
    ("{{ inputs.items + [4] }}|{{ inputs.items }}", "[1,2,3,4]|[1,2,3]"),  # never mutates
])
def test_pebble_arithmetic(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


def test_division_by_zero(engine, variables):
    with pytest.raises(TemplateError, match="division by zero"):
        engine.render("{{ 1 / 0 }}", variables)
    with pytest.raises(TemplateError, match="division by zero"):
        engine.render("{{ 1 % 0 }}", variables)


@pytest.mark.parametrize(("template", "line"), [
    ("{{ ?? }}", 1),
    ("{{ a ? b }}", 1),
    ("a\nb\n{{ 1 .. }}", 3),
    ("{% if x %}\n{% endfor %}", 2),
    ("{{ a | }}", 1),
])
def test_syntax_errors(engine, template, line):
    with pytest.raises(TemplateError) as info:
        engine.check(template)
    assert f"line {line}" in str(info.value)
    assert info.value.line == line  # type: ignore[attr-defined]
