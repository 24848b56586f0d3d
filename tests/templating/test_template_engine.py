"""TemplateEngine: rendering rules, undefined handling, evaluate(), check(), caching, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from kray.errors import TemplateError
from kray.templating import TemplateEngine, is_truthy


def test_plain_string_is_returned_unchanged_without_compiling(engine, variables, monkeypatch):
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compiled a plain string")

    monkeypatch.setattr(engine._env, "parse", boom)
    text = "no template here, just {braces} and {# not a comment"
    assert engine.render(text, variables) is text
    assert engine.evaluate(text, variables) is text
    engine.check(text)


def test_same_source_is_compiled_once(engine, variables, monkeypatch):
    calls: list[str] = []
    original = engine._env.parse

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(engine._env, "parse", counting)
    for _ in range(5):
        assert engine.render("{{ inputs.name }}", variables) == "World"
    engine.check("{{ inputs.name }}")
    assert calls == ["{{ inputs.name }}"]


def test_cache_is_lru_bounded(variables):
    engine = TemplateEngine(cache_size=2)
    for i in range(5):
        engine.render(f"{{{{ {i} }}}}", variables)
    assert list(engine._cache) == ["{{ 3 }}", "{{ 4 }}"]


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ true }}", "true"),
    ("{{ false }}", "false"),
    ("{{ inputs.flag }}", "true"),
    ("{{ inputs.nothing }}", ""),
    ("{{ null }}", ""),
    ("{{ inputs.items }}", "[1,2,3]"),
    ("{{ inputs.map }}", '{"a":1,"b":2}'),
    ("{{ {'k': [true, null, 'é']} }}", '{"k":[true,null,"é"]}'),
    ("{{ 1.5 }}", "1.5"),
    ("{{ 'a' ~ true ~ null ~ [1] }}", "atrue[1]"),
    ("x{{ inputs.count }}y\n", "x3y\n"),  # the trailing newline is kept
])
def test_values_print_like_kestra(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


def test_datetimes_print_as_iso(engine):
    assert engine.render("{{ now() }}", {}) == "2024-03-15T10:30:45.123456Z"
    when = datetime(2024, 1, 2, 3, 4, 5)
    assert engine.render("{{ d }}", {"d": when.date()}) == "2024-01-02"
    assert engine.render("{{ d }}", {"d": when}) == "2024-01-02T03:04:05"


@pytest.mark.parametrize(("template", "message"), [
    ("{{ foo }}", "'foo' is undefined"),
    ("{{ outputs.t2.value }}", "'outputs.t2' is undefined (outputs has each, t1)"),
    ("{{ outputs.t1.missing }}", "'outputs.t1.missing' is undefined"),
    ("{{ outputs['t9'] }}", "'outputs['t9']' is undefined"),
    ("{{ outputs.each[taskrun.value].zz }}", "'outputs.each[taskrun.value].zz' is undefined"),
    ("{{ inputs.items[7] }}", "'inputs.items[7]' is undefined"),
    ("{{ outputs.t2.value.deeper.still }}", "'outputs.t2' is undefined"),
])
def test_undefined_errors_name_the_missing_path(engine, variables, template, message):
    with pytest.raises(TemplateError) as info:
        engine.render(template, variables)
    assert message in str(info.value)


@pytest.mark.parametrize("template", [
    "{% if outputs.nope.x %}y{% endif %}",
    "{% for x in outputs.nope.items %}{{ x }}{% endfor %}",
    "{{ outputs.nope.x == 1 }}",
    "{{ outputs.nope.x + 1 }}",
    "{{ outputs.nope.x ~ 'a' }}",
    "{{ outputs.nope | length }}",
    "{{ outputs.nope | upper }}",
    "{{ outputs.nope | date('yyyy') }}",
    "{{ 'a' in outputs.nope }}",
    "{{ outputs.nope() }}",
])
def test_using_an_undefined_value_raises(engine, variables, template):
    with pytest.raises(TemplateError, match="'outputs.nope' is undefined"):
        engine.render(template, variables)


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ outputs.nope.a.b is defined }}", "false"),
    ("{{ outputs.nope.a.b is not defined }}", "true"),
    ("{{ outputs.t1.value is defined }}", "true"),
    ("{{ outputs.nope.a.b | default('d') }}", "d"),
    ("{{ inputs.nothing | default('d') }}", "d"),
    ("{{ inputs.empty | default('d') }}", "d"),
    ("{{ inputs.blank | default('d') }}", "d"),
    ("{{ [] | default('d') }}", "d"),
    ("{{ 0 | default('d') }}", "0"),
    ("{{ false | default('d') }}", "false"),
    ("{{ inputs.name | default('d') }}", "World"),
])
def test_defined_and_default_see_through_chains(engine, variables, template, expected):
    assert engine.render(template, variables) == expected


def test_maps_expose_keys_before_methods(engine):
    data = {"o": {"values": [1], "items": "it", "keys": None}}
    assert engine.render("{{ o.values }}|{{ o.items }}|{{ o.keys }}", data) == "[1]|it|"
    assert engine.render("{% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}",
                         {"m": {"a": 1}}) == "a1"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ inputs.items }}", [1, 2, 3]),
    ("  {{ inputs.map }}\n", {"a": 1, "b": 2}),
    ("{{ inputs.count + 1 }}", 4),
    ("{{ inputs.flag }}", True),
    ("{{ inputs.nothing }}", None),
    ("{{ '42' }}", "42"),
    ("{{ outputs.nope ?? [1, 'a'] }}", [1, "a"]),
    ("{{ inputs.count }}{{ inputs.count }}", "33"),
    ("n={{ inputs.count }}", "n=3"),
    ("{% if true %}{{ inputs.items }}{% endif %}", "[1,2,3]"),
])
def test_evaluate_returns_native_values_for_a_single_expression(engine, variables, template,
                                                               expected):
    result = engine.evaluate(template, variables)
    assert result == expected
    assert type(result) is type(expected)


def test_evaluate_keeps_datetimes_and_rejects_undefined(engine, variables):
    assert engine.evaluate("{{ now() }}", variables) == datetime.fromisoformat(
        "2024-03-15T10:30:45.123456+00:00")
    with pytest.raises(TemplateError, match="'outputs.nope' is undefined"):
        engine.evaluate("{{ outputs.nope.value }}", variables)
    with pytest.raises(TemplateError, match="'outputs.nope' is undefined"):
        engine.evaluate("{{ [1, outputs.nope] }}", variables)


def test_render_value_renders_keys_values_and_lists(engine, variables):
    value = {"{{ flow.id }}": ["{{ inputs.count }}", 7, None, {"k": "{{ inputs.flag }}"}],
             "plain": 1.5}
    assert engine.render_value(value, variables) == {
        "hello": ["3", 7, None, {"k": "true"}], "plain": 1.5}
    assert engine.render_value(42, variables) == 42


def test_check_reports_the_line_of_a_syntax_error(engine):
    with pytest.raises(TemplateError) as info:
        engine.check("line one\nline two {{ inputs.a }}\nthird {{ inputs.b ( }}\n")
    assert "line 3" in str(info.value)
    assert info.value.line == 3  # type: ignore[attr-defined]


def test_check_reports_unknown_filters_functions_and_tests(engine):
    with pytest.raises(TemplateError, match=r"unknown filter 'nope' \(line 2"):
        engine.check("a\n{% if x %}{{ y | nope }}{% endif %}")
    with pytest.raises(TemplateError, match="unknown function 'frobnicate'"):
        engine.check("{{ frobnicate(1) }}")
    with pytest.raises(TemplateError, match="unknown test 'blue'"):
        engine.check("{{ x is blue }}")


def test_check_accepts_valid_templates_without_rendering(engine):
    engine.check("{{ outputs.any.thing ?? secret('X') | upper }}")  # no variables, no services
    engine.check("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}")
    engine.check("{% for i in 1..3 %}{{ i }}{% endfor %}")


def test_runtime_errors_carry_the_line_of_multi_line_templates(engine, variables):
    with pytest.raises(TemplateError) as info:
        engine.render("first\n\n{{ inputs.map + 1 }}", variables)
    assert "(line 3: {{ inputs.map + 1 }})" in str(info.value)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ inputs.items.append(4) }}",
    "{{ inputs.map.update({'c': 3}) }}",
    "{{ now.__globals__ }}",
    "{{ range.__call__ }}",
])
def test_sandbox_blocks_unsafe_access(engine, variables, template):
    with pytest.raises(TemplateError):
        engine.render(template, variables)
    assert variables["inputs"]["items"] == [1, 2, 3]


def test_output_size_is_capped(variables):
    engine = TemplateEngine(max_output_chars=100)
    assert len(engine.render("{{ 'x' * 100 }}", variables)) == 100
    with pytest.raises(TemplateError, match="exceeds 100 characters"):
        engine.render("{% for i in range(1, 200) %}ab{% endfor %}", variables)
    with pytest.raises(TemplateError, match="limit"):
        engine.render("{{ 'x' * 1000 }}", variables)
    with pytest.raises(TemplateError, match="exceeds 100 characters"):
        engine.evaluate("{{ big }}", {"big": "y" * 101})


def test_ranges_and_powers_are_capped(variables):
    engine = TemplateEngine(max_range=10)
    assert engine.render("{{ range(1, 10) | length }}", variables) == "10"
    with pytest.raises(TemplateError, match="exceeds the limit of 10"):
        engine.render("{{ range(0, 10) }}", variables)
    with pytest.raises(TemplateError, match="exceeds the limit of 10"):
        engine.render("{% for i in 1..11 %}{% endfor %}", variables)
    with pytest.raises(TemplateError, match="too large"):
        engine.render("{{ 10 ** 100000 }}", variables)


def test_render_time_is_capped(variables):
    engine = TemplateEngine(max_render_seconds=0.05)
    with pytest.raises(TemplateError, match="longer than 0.05 seconds"):
        engine.render("{% for i in range(0, 99999) %}{% for j in range(0, 99999) %}"
                      "{% endfor %}{% endfor %}", variables)


def test_failures_are_always_template_errors(engine, variables):
    for template in ["{{ 1 / 0 }}", "{{ inputs.name | chunk(2) }}", "{{ inputs.name | number }}",
                     "{% for %}", "{{ 'a' | date }}", "{% endif %}"]:
        with pytest.raises(TemplateError):
            engine.render(template, {**variables, "x": "1"})


class RecordingServices:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def secret(self, name: str) -> str:
        self.calls.append(("secret", name))
        return "s3cr3t"

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        self.calls.append(("kv", key, namespace, error_on_missing))
        return {"stored": [1, 2]}

    def read(self, path: str) -> str:
        self.calls.append(("read", path))
        return "file content"

    def file_size(self, path: str) -> int:
        self.calls.append(("file_size", path))
        return 0 if path.endswith("empty") else 12

    def file_exists(self, path: str) -> bool:
        self.calls.append(("file_exists", path))
        return True

    def file_uri(self, path: str) -> str:
        self.calls.append(("file_uri", path))
        return "kray://ns/" + path

    def error_logs(self) -> list[dict[str, Any]]:
        self.calls.append(("error_logs",))
        return [{"message": "boom"}]


def test_service_functions_call_the_services(engine, variables):
    services = RecordingServices()
    template = ("{{ secret('DB') }}|{{ kv('k') }}|{{ kv('k2', 'other.ns', errorOnMissing=false) }}|"
                "{{ read('a.txt') }}|{{ fileSize('b') }}|{{ fileExists('c') }}|{{ fileURI('d') }}|"
                "{{ isFileEmpty('x/empty') }}|{{ errorLogs()[0].message }}")
    assert engine.render(template, variables, services) == (
        's3cr3t|{"stored":[1,2]}|{"stored":[1,2]}|file content|12|true|kray://ns/d|true|boom')
    assert services.calls[:3] == [("secret", "DB"), ("kv", "k", None, True),
                                  ("kv", "k2", "other.ns", False)]
    assert engine.evaluate("{{ kv('k').stored }}", variables, services) == [1, 2]


@pytest.mark.parametrize(("call", "name"), [
    ("secret('X')", "secret"), ("kv('k')", "kv"), ("read('p')", "read"),
    ("fileSize('p')", "fileSize"), ("fileExists('p')", "fileExists"), ("fileURI('p')", "fileURI"),
    ("errorLogs()", "errorLogs"),
])
def test_service_functions_without_services_raise(engine, variables, call, name):
    with pytest.raises(TemplateError, match=rf"^{name}\(\) is not available here$"):
        engine.render("{{ " + call + " }}", variables)


def test_service_missing_a_method_raises(engine, variables):
    class OnlySecrets:
        def secret(self, name: str) -> str:
            return "v"

    assert engine.render("{{ secret('a') }}", variables, OnlySecrets()) == "v"  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match=r"kv\(\) is not available here"):
        engine.render("{{ kv('a') }}", variables, OnlySecrets())  # type: ignore[arg-type]


def test_render_function_renders_variables_again(engine, variables):
    assert engine.render("{{ vars.greeting }}", variables) == "Hello {{ inputs.name }}"
    assert engine.render("{{ render(vars.greeting) }}", variables) == "Hello World"
    assert engine.render("{{ render(vars.nested) }}", variables) == "Hello World!"
    assert engine.render("{{ renderOnce(vars.nested) }}", variables) == "Hello {{ inputs.name }}!"
    assert engine.evaluate("{{ render(7) }}", variables) == 7
    assert engine.render("{{ render(toRender=vars.greeting, recursive=false) }}",
                         variables) == "Hello World"
    services = RecordingServices()
    assert engine.render("{{ render(v) }}", {"v": "{{ secret('A') }}"}, services) == "s3cr3t"


def test_render_function_stops_runaway_recursion(engine):
    with pytest.raises(TemplateError, match="render"):
        engine.render("{{ render(loop1) }}", {"loop1": "{{ render(loop1) }}"})
    with pytest.raises(TemplateError, match="still changes"):
        engine.render("{{ render(a) }}", {"a": "{{ b }}", "b": "{{ a }}"})


def test_render_function_reports_syntax_errors_of_the_value(engine):
    with pytest.raises(TemplateError, match=r"^render\(\): "):
        engine.render("{{ render(v) }}", {"v": "{{ oops( }}"})


@pytest.mark.parametrize(("value", "expected"), [
    ("false", False), ("FALSE", False), (" False ", False), ("0", False), ("-0", False),
    ("", False), ("   ", False), (None, False), (False, False), (0, False),
    ("true", True), ("no", True), ("0.0", True), (1, True), (0.0, True), ([], True),
    ({}, True), ("null", True), (True, True),
])
def test_is_truthy_follows_kestra(value, expected):
    assert is_truthy(value) is expected


def test_now_uses_the_clock_and_time_zones(variables):
    engine = TemplateEngine(clock=lambda: datetime(2024, 7, 1, 12, 0), timezone="Europe/Paris")
    assert engine.render("{{ now() }}", variables) == "2024-07-01T14:00:00+02:00"
    assert engine.render("{{ now(timeZone='UTC') }}", variables) == "2024-07-01T12:00:00Z"
    assert engine.render("{{ now(format='yyyy/MM/dd HH') }}", variables) == "2024/07/01 14"
    assert engine.render("{{ now() | date('HH:mm') }}", variables) == "14:00"


def test_concurrent_renders_keep_their_own_services(engine):
    from concurrent.futures import ThreadPoolExecutor

    class Own:
        def __init__(self, n: int) -> None:
            self.n = n

        def secret(self, name: str) -> str:
            return f"{name}-{self.n}"

    def work(n: int) -> str:
        return engine.render("{% for i in range(1, 50) %}{% endfor %}{{ secret('k') }}",
                             {}, Own(n))  # type: ignore[arg-type]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(64)))
    assert results == [f"k-{n}" for n in range(64)]
