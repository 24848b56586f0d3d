from __future__ import annotations

from collections.abc import Callable

from kray.errors import Issue
from kray.flow.model import Flow

from .tasks import Echo, Group, Shout

Parse = Callable[[str], Flow]
Issues = Callable[[str], list[Issue]]

HEAD = "id: defaults\nnamespace: team\n"


def test_exact_type_fills_missing_properties(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test.core.Echo
    values:
      message: from defaults
      level: DEBUG
tasks:
  - id: a
    type: test.core.Echo
  - id: b
    type: test.core.Echo
    level: ERROR
""")
    a, b = flow.tasks
    assert isinstance(a, Echo) and (a.message, a.level) == ("from defaults", "DEBUG")
    assert isinstance(b, Echo) and (b.message, b.level) == ("from defaults", "ERROR")


def test_dotted_prefix_matches_and_skips_properties_a_type_lacks(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test.core
    values:
      message: m
      text: t
      loud: true
tasks:
  - id: a
    type: test.core.Echo
  - id: b
    type: test.core.Shout
""")
    a, b = flow.tasks
    assert isinstance(a, Echo) and a.message == "m"
    assert isinstance(b, Shout) and (b.text, b.loud) == ("t", True)


def test_prefix_must_end_at_a_dot(issues: Issues) -> None:
    found = issues(HEAD + """\
pluginDefaults:
  - type: test.co
    values: {message: m}
tasks:
  - id: a
    type: test.core.Echo
""")
    assert [i.message for i in found] == ["field required: 'message'"]


def test_forced_values_override_the_task(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test.core.Echo
    forced: true
    values:
      level: WARN
tasks:
  - id: a
    type: test.core.Echo
    message: x
    level: DEBUG
""")
    assert flow.tasks[0].level == "WARN"  # type: ignore[attr-defined]


def test_defaults_match_any_alias_of_the_resolved_class(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: io.test.plugin.core.Echo
    values: {message: via alias}
  - type: io.test.plugin.flow
    values: {errors: []}
tasks:
  - id: a
    type: test.core.Echo
  - id: g
    type: test.flow.Group
    tasks:
      - id: b
        type: test.core.Echo
""")
    a, g = flow.tasks
    assert isinstance(a, Echo) and a.message == "via alias"
    assert isinstance(g, Group) and isinstance(g.tasks[0], Echo)
    assert g.tasks[0].message == "via alias"  # nested tasks get defaults too


def test_dicts_are_deep_merged(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test.core.Echo
    values:
      message: m
      options: {a: 1, nested: {x: 1, y: 1}}
  - type: test.core.Echo
    forced: true
    values:
      options: {nested: {y: 2}}
tasks:
  - id: a
    type: test.core.Echo
    options: {b: 2, nested: {x: 0}}
""")
    assert flow.tasks[0].options == {  # type: ignore[attr-defined]
        "a": 1, "b": 2, "nested": {"x": 0, "y": 2}}


def test_the_most_specific_default_wins(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test
    values: {level: GENERIC}
  - type: test.core.Echo
    values: {level: EXACT, message: m}
  - type: test.core
    values: {level: PREFIX}
  - type: test
    forced: true
    values: {message: forced-generic}
  - type: test.core.Echo
    forced: true
    values: {message: forced-exact}
tasks:
  - id: a
    type: test.core.Echo
""")
    a = flow.tasks[0]
    assert isinstance(a, Echo) and (a.level, a.message) == ("EXACT", "forced-exact")


def test_id_and_type_are_never_defaulted(parse: Parse) -> None:
    flow = parse(HEAD + """\
pluginDefaults:
  - type: test.core.Echo
    forced: true
    values: {id: other, type: test.core.Shout, message: m}
tasks:
  - id: a
    type: test.core.Echo
""")
    assert (flow.tasks[0].id, type(flow.tasks[0])) == ("a", Echo)


def test_exact_default_with_an_unknown_property_is_reported(issues: Issues) -> None:
    found = issues(HEAD + """\
pluginDefaults:
  - type: test.core.Echo
    values: {message: m, mesage: typo}
tasks:
  - id: a
    type: test.core.Echo
""")
    assert [(i.line, i.path, i.message) for i in found] == [
        (7, "tasks[0].mesage", "extra field not permitted: 'mesage'; did you mean 'message'?")]


def test_invalid_plugin_default_entries(issues: Issues) -> None:
    found = issues(HEAD + """\
pluginDefaults:
  - values: {message: m}
  - type: test.core.Echo
    values: not-a-map
tasks:
  - id: a
    type: test.core.Echo
    message: x
""")
    assert [(i.line, i.column, i.message) for i in found] == [
        (4, 5, "field required: 'type'"),
        (6, 5, "invalid value 'not-a-map' for 'values': input should be a valid dictionary"),
    ]
