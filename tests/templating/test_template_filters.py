"""Filters and functions under their Kestra/Pebble names."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest

from kray.errors import TemplateError


@pytest.mark.parametrize(("template", "expected"), [
    # JSON / YAML
    ("{{ inputs.map | toJson }}", '{"a":1,"b":2}'),
    ("{{ inputs.map | json }}", '{"a":1,"b":2}'),
    ("{{ 'é\"' | toJson }}", '"é\\""'),
    ("{{ null | toJson }}", "null"),
    ("{{ json('{\"a\": [1, 2]}').a[1] }}", "2"),
    ("{{ fromJson('[1, {\"b\": true}]')[1].b }}", "true"),
    ("{{ toJson({'a': [1]}) }}", '{"a":[1]}'),
    ("{{ yaml('a: 1\\nb: [x, y]').b[1] }}", "y"),
    ("{{ json(json='[7]')[0] }}|{{ yaml(yaml='k: v').k }}", "7|v"),
    ("{{ {'a': [1, 2]} | toYaml }}", "a:\n- 1\n- 2\n"),
    # maps and lists
    ("{{ inputs.map | keys }}", '["a","b"]'),
    ("{{ ['x', 'y'] | keys }}", "[0,1]"),
    ("{{ inputs.map | values }}", "[1,2]"),
    ("{{ [[1, 2], [3, [4]], 5] | flatten }}", "[1,2,3,[4],5]"),
    ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", "[[1,2],[3,4],[5]]"),
    ("{{ inputs.items | first }}|{{ inputs.items | last }}", "1|3"),
    ("{{ 'abc' | first }}|{{ 'abc' | last }}|{{ [] | first }}", "a|c|"),
    ("{{ inputs.items | length }}|{{ 'abcd' | length }}|{{ inputs.map | length }}", "3|4|2"),
    ("{{ null | length }}", "0"),
    ("{{ inputs.items | join(', ') }}", "1, 2, 3"),
    ("{{ [true, null, 'x'] | join('-') }}", "true--x"),
    ("{{ [3, 1, 2] | sort }}|{{ ['b', 'B', 'a'] | sort }}", "[1,2,3]|[\"B\",\"a\",\"b\"]"),
    ("{{ [3, 1, 2] | rsort }}", "[3,2,1]"),
    ("{{ [1, 2, 3] | reverse }}|{{ 'abc' | reverse }}", "[3,2,1]|cba"),
    ("{{ [1, 2, 3, 4] | slice(1, 3) }}|{{ 'abcdef' | slice(2, 4) }}", "[2,3]|cd"),
    ("{{ 'abcdef' | slice(2) }}", "cdef"),
    ("{{ {'a': 1} | merge({'b': 2}) }}|{{ [1] | merge([2]) }}", '{"a":1,"b":2}|[1,2]'),
    ("{{ [1, 2, 1, 3, 2] | distinct }}", "[1,2,3]"),
    # strings
    ("{{ 'Hello World, Ça va?' | slugify }}", "hello-world-ca-va"),
    ("{{ 'a.b.c' | substringBefore('.') }}|{{ 'a.b.c' | substringAfter('.') }}", "a|b.c"),
    ("{{ 'a.b.c' | substringBeforeLast('.') }}|{{ 'a.b.c' | substringAfterLast('.') }}", "a.b|c"),
    ("{{ 'abc' | substringBefore('x') }}|{{ 'abc' | substringAfter('x') }}|", "abc||"),
    ("{{ 'abc' | substringBeforeLast('x') }}|{{ 'abc' | substringAfterLast('x') }}|", "abc||"),
    ("{{ 'kestra' | startsWith('kes') }}|{{ 'kestra' | endsWith('kes') }}", "true|false"),
    ("{{ 'a\\nb\\nc' | indent(2) }}", "a\n  b\n  c"),
    ("{{ 'a\\nb' | nindent(2) }}", "\n  a\n  b"),
    ("{{ 'a\\nb' | indent(1, '\\t') }}", "a\n\tb"),
    ("{{ 'a,b,,c,,' | split(',') }}", '["a","b","","c"]'),
    ("{{ 'a,b,c' | split(',', 2) }}", '["a","b,c"]'),
    ("{{ 'I like %a% and %b%' | replace({'%a%': 'x', '%b%': 'y'}) }}", "I like x and y"),
    ("{{ 'a1b22' | replace({'[0-9]+': '#'}, regexp=true) }}", "a#b#"),
    ("{{ 'aaa' | replace('a', 'b') }}", "bbb"),
    ("{{ {'k': 'aXa', 'l': ['X']} | replace({'X': 'y'}) }}", '{"k":"aya","l":["y"]}'),
    ("{{ 'hello world' | capitalize }}|{{ 'hELLO' | capitalize }}", "Hello world|HELLO"),
    ("{{ 'hello' | upper }}|{{ 'HeLLo' | lower }}|{{ '  x  ' | trim }}|", "HELLO|hello|x|"),
    ("{{ null | upper }}|{{ null | trim }}|", "||"),
    ("{{ 'hello world' | title }}", "Hello World"),
    ("{{ 'abcdefghij' | abbreviate(6) }}|{{ 'abc' | abbreviate(6) }}", "abc...|abc"),
    ("{{ 'it\\'s' | escapeChar('single') }}", "it\\'s"),
    ("{{ 'say \"hi\"' | escapeChar('double') }}", 'say \\"hi\\"'),
    ("{{ 12 | string ~ true | string }}", "12true"),
    ("{{ -3 | abs }}", "3"),
    # numbers
    ("{{ '42' | number + 1 }}|{{ '1.5' | number }}|{{ '0x1F' | number }}", "43|1.5|31"),
    ("{{ '42' | number('FLOAT') }}|{{ '7' | number('INT') }}", "42.0|7"),
    ("{{ 1234567.891 | numberformat('#,##0.00') }}", "1,234,567.89"),
    ("{{ 3.14159 | numberformat('#.##') }}|{{ 2 | numberformat('0.000') }}", "3.14|2.000"),
    ("{{ 0.5 | numberformat('#%') }}", "50%"),
    # encodings and digests
    ("{{ 'kestra' | base64encode }}", base64.b64encode(b"kestra").decode()),
    ("{{ 'a2VzdHJh' | base64decode }}", "kestra"),
    ("{{ 'a b&c/d~' | urlencode }}", "a+b%26c%2Fd%7E"),
    ("{{ 'a+b%26c%2Fd' | urldecode }}", "a b&c/d"),
    ("{{ 'abc' | md5 }}", hashlib.md5(b"abc").hexdigest()),
    ("{{ 'abc' | sha1 }}", hashlib.sha1(b"abc").hexdigest()),
    ("{{ 'abc' | sha256 }}", hashlib.sha256(b"abc").hexdigest()),
    ("{{ 'abc' | sha512 }}", hashlib.sha512(b"abc").hexdigest()),
    # jq
    ("{{ {'a': {'b': [1, 2]}} | jq('.a.b[1]') }}", "[2]"),
    ("{{ {'a': {'b': [1, 2]}} | jq('.a.b[]') | last }}", "2"),
    ("{{ '{\"x\": {\"y\": 5}}' | jq('.x.y') | first }}", "5"),
    ("{{ inputs.map | jq('keys') | first }}", '["a","b"]'),
    ("{{ inputs.items | jq('length') | first }}", "3"),
    # functions
    ("{{ max(3, 9, 2) }}|{{ min([4, 1]) }}", "9|1"),
])
def test_filters(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{{ 'abc' | number }}", "'abc' is not a number"),
    ("{{ '1' | number('BYTE') }}", "unknown number type"),
    ("{{ 'x' | keys }}", "'keys' filter"),
    ("{{ 'x' | flatten }}", "'flatten' filter"),
    ("{{ [1] | chunk(0) }}", "'chunk' filter"),
    ("{{ 'a\\nb' | indent }}", "integer amount"),
    ("{{ 'abc' | slice(2, 9) }}", "out of bounds"),
    ("{{ '!!' | base64decode }}", "not base64"),
    ("{{ 'not json' | jq('.a') }}", "not JSON"),
    ("{{ {'a': 1} | jq('.a[0]') }}", "cannot index number"),
    ("{{ {'a': 1} | jq('reduce .[] as $x (0; .)') }}", "not supported"),
    ("{{ json('{oops') }}", "not valid JSON"),
    ("{{ yaml('a: [') }}", "not valid YAML"),
    ("{{ 'x' | escapeChar('weird') }}", "single, double or shell"),
])
def test_filter_errors(engine, variables, template, message):
    with pytest.raises(TemplateError, match=re.escape(message)):
        engine.render(template, variables)


@pytest.mark.parametrize("template", [
    "{{ null | keys }}", "{{ null | slugify }}", "{{ null | date('yyyy') }}",
    "{{ null | jq('.') }}", "{{ null | substringBefore('a') }}", "{{ null | dateAdd(1, 'DAYS') }}",
])
def test_null_in_null_out(engine, variables, template):
    assert engine.evaluate(template, variables) is None


def test_uuid_and_random_int(engine, variables):
    first = engine.render("{{ uuid() }}", variables)
    assert uuid.UUID(first).version == 4
    assert first != engine.render("{{ uuid() }}", variables)
    seen = {engine.evaluate("{{ randomInt(1, 4) }}", variables) for _ in range(200)}
    assert seen == {1, 2, 3}  # upper bound exclusive, like Kestra
    with pytest.raises(TemplateError, match="upper is less than lower"):
        engine.render("{{ randomInt(5, 1) }}", variables)
