from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kray.errors import FlowValidationError, Issue
from kray.flow.model import Flow
from kray.flow.parse import load_flow, load_flows, parse_flow, template_checker
from kray.registry import PluginRegistry

from .tasks import Choose, Echo, Graph, Group, Shout, Wrap

Issues = Callable[[str], list[Issue]]
Parse = Callable[[str], Flow]

HEAD = "id: hello\nnamespace: company.team\n"


def located(found: list[Issue]) -> list[tuple[int | None, int | None, str]]:
    return [(i.line, i.column, i.message) for i in found]


# -- valid flows -------------------------------------------------------------------------------

def test_valid_flow_builds_task_instances(parse: Parse) -> None:
    src = HEAD + """\
description: a flow
labels:
  - key: team
    value: data
tasks:
  - id: hi
    type: io.test.plugin.core.Echo
    message: "{{ inputs.name }}"
  - id: group
    type: test.flow.Group
    tasks:
      - id: inner
        type: test.core.Shout
        text: x
    errors:
      - id: onerr
        type: test.core.Echo
        message: failed
  - id: choose
    type: test.flow.Choose
    value: "{{ inputs.x }}"
    cases:
      1:
        - id: one
          type: test.core.Echo
          message: one
    defaults:
      - id: other
        type: test.core.Echo
        message: other
  - id: wrap
    type: test.flow.Wrap
    task:
      id: wrapped
      type: test.core.Shout
      text: y
  - id: empty
    type: test.flow.Wrap
errors:
  - id: e
    type: test.core.Echo
    message: flow failed
finally:
  - id: f
    type: test.core.Echo
    message: done
afterExecution:
  - id: after
    type: test.core.Echo
    message: after
"""
    flow = parse(src)
    assert flow.uid == "company.team/hello"
    assert flow.labels == {"team": "data"}
    hi, group, choose, wrap, empty = flow.tasks
    assert isinstance(hi, Echo) and hi.type == "io.test.plugin.core.Echo"
    assert isinstance(group, Group)
    assert isinstance(group.tasks[0], Shout) and isinstance(group.errors[0], Echo)
    assert isinstance(choose, Choose) and list(choose.cases) == ["1"]
    assert isinstance(choose.cases["1"][0], Echo) and isinstance(choose.defaults[0], Echo)
    assert isinstance(wrap, Wrap) and isinstance(wrap.task, Shout)
    assert isinstance(empty, Wrap) and empty.task is None
    assert [t.id for t in flow.all_tasks()] == [
        "hi", "group", "inner", "onerr", "choose", "one", "other", "wrap", "wrapped", "empty",
        "e", "f", "after"]
    assert flow.source == src and flow.path == "flow.yaml"


def test_dag_children_are_parsed(parse: Parse) -> None:
    flow = parse(HEAD + """\
tasks:
  - id: dag
    type: test.flow.Graph
    tasks:
      - task: {id: a, type: test.core.Shout, text: a}
      - task: {id: b, type: test.core.Shout, text: b}
        dependsOn: [a]
""")
    dag = flow.tasks[0]
    assert isinstance(dag, Graph)
    assert [type(n.task) for n in dag.tasks] == [Shout, Shout]
    assert dag.tasks[1].depends_on == ["a"]


# -- locations and gathering -------------------------------------------------------------------

def test_every_error_is_gathered_with_its_position(issues: Issues) -> None:
    src = """\
id: hello
namespace: Company
tasks:
  - id: a
    type: test.core.Echo
    mesage: hi
  - id: b
    type: test.core.Shout
    text: x
    retry:
      type: constant
      maxAttempt: 0
  - id: c
    type: test.core.Nope
"""
    found = issues(src)
    assert located(found) == [
        (2, 1, "invalid value 'Company' for 'namespace': string should match pattern "
               "'^[a-z0-9][a-z0-9._-]*$'"),
        (4, 5, "field required: 'message'"),
        (6, 5, "extra field not permitted: 'mesage'; did you mean 'message'?"),
        (12, 7, "invalid value 0 for 'maxAttempt': input should be greater than or equal to 1"),
        (14, 11, "unknown type 'test.core.Nope'"),
    ]
    assert [i.path for i in found] == ["namespace", "tasks[0].message", "tasks[0].mesage",
                                       "tasks[1].retry.maxAttempt", "tasks[2].type"]
    assert all(i.file == "flow.yaml" for i in found)


def test_error_message_lists_every_issue(registry: PluginRegistry) -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow("id: x\nnamespace: y\ntasks: []\n", file="f.yaml", registry=registry)
    assert str(info.value) == ("f.yaml:3:1: [tasks] invalid value for 'tasks': list should have "
                               "at least 1 item after validation, not 0")


def test_unknown_type_suggests_close_names(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    type: test.core.Ecoh\n    message: x\n")
    assert located(found) == [
        (5, 11, "unknown type 'test.core.Ecoh'; did you mean test.core.Echo?")]


def test_unknown_type_inside_a_flowable_does_not_hide_siblings(issues: Issues) -> None:
    found = issues(HEAD + """\
tasks:
  - id: g
    type: test.flow.Group
    tasks:
      - id: bad
        type: nope.Nope
      - id: missing
        type: test.core.Shout
    extra: 1
""")
    assert located(found) == [
        (8, 15, "unknown type 'nope.Nope'"),
        (9, 9, "field required: 'text'"),
        (11, 5, "extra field not permitted: 'extra'"),
    ]


def test_missing_type_and_non_mapping_task(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    message: x\n  - just a string\n  - 42\n")
    assert located(found) == [
        (4, 5, "field required: 'type'"),
        (6, 5, "a task must be a mapping, got a str"),
        (7, 5, "a task must be a mapping, got a int"),
    ]


def test_type_must_be_a_string(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    type: [x]\n")
    assert located(found) == [(5, 11, "invalid value for 'type': must be a string")]


def test_union_alternatives_become_one_issue(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    type: test.core.Shout\n    text: x\n"
                          "    runIf: {a: 1}\n")
    assert located(found) == [
        (7, 5, "invalid value for 'runIf': input should be a valid string; or input should be "
               "a valid boolean")]


def test_nested_extra_field_suggests_from_the_nested_model(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    type: test.core.Shout\n    text: x\n"
                          "    retry:\n      type: constant\n      maxAttempts: 3\n")
    assert located(found) == [
        (9, 7, "extra field not permitted: 'maxAttempts'; did you mean 'maxAttempt'?")]


def test_flow_level_extra_field_suggests(issues: Issues) -> None:
    found = issues(HEAD + "task:\n  - id: a\n    type: test.core.Shout\n    text: x\n")
    assert located(found) == [
        (1, 1, "field required: 'tasks'"),
        (3, 1, "extra field not permitted: 'task'; did you mean 'tasks'?"),
    ]


def test_source_and_path_are_not_flow_properties(issues: Issues) -> None:
    found = issues(HEAD + "path: /etc\ntasks:\n  - {id: a, type: test.core.Shout, text: x}\n")
    assert located(found) == [(3, 1, "extra field not permitted: 'path'")]


@pytest.mark.parametrize(("source", "message"), [
    ("- a\n- b\n", "a flow must be a YAML mapping, got a list"),
    ("", "a flow must be a YAML mapping, got nothing"),
    ("just text\n", "a flow must be a YAML mapping, got a str"),
])
def test_top_level_must_be_a_mapping(issues: Issues, source: str, message: str) -> None:
    [issue] = issues(source)
    assert issue.message == message


def test_yaml_syntax_error_is_one_located_issue(issues: Issues) -> None:
    [issue] = issues(HEAD + "tasks:\n  - id: a\n    type: [unclosed\n")
    assert (issue.line, issue.column, issue.file) == (6, 1, "flow.yaml")
    assert issue.message.startswith("invalid YAML")


def test_duplicate_yaml_key_is_reported(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: a\n    type: test.core.Shout\n    text: x\n"
                          "    text: y\n")
    assert located(found) == [(7, 5, "duplicate key 'text'")]


def test_labels_list_items_are_checked(issues: Issues) -> None:
    found = issues(HEAD + "labels:\n  - nokey: 1\ntasks:\n  - {id: a, type: test.core.Shout, "
                          "text: x}\n")
    assert located(found) == [
        (3, 1, "invalid value for 'labels': a label list item must be {key, value}")]


# -- ids ---------------------------------------------------------------------------------------

def test_duplicate_task_ids_across_the_whole_flow(issues: Issues) -> None:
    found = issues(HEAD + """\
tasks:
  - id: a
    type: test.flow.Group
    tasks:
      - id: b
        type: test.core.Shout
        text: x
  - id: b
    type: test.core.Shout
    text: y
errors:
  - id: a
    type: nope.Unknown
finally:
  - id: c
    type: test.flow.Wrap
    task: {id: b, type: test.core.Shout, text: z}
""")
    assert located(found) == [
        (10, 9, "duplicate task id 'b' (first defined at line 7)"),
        (14, 9, "duplicate task id 'a' (first defined at line 4)"),
        (15, 11, "unknown type 'nope.Unknown'"),
        (19, 16, "duplicate task id 'b' (first defined at line 7)"),
    ]


def test_bad_task_id_pattern(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - id: my task\n    type: test.core.Shout\n    text: x\n")
    assert located(found) == [
        (4, 5, "invalid value 'my task' for 'id': string should match pattern "
               "'^[a-zA-Z0-9][a-zA-Z0-9_-]*$'")]


# -- dags --------------------------------------------------------------------------------------

def test_dag_unknown_dependency_and_cycle(issues: Issues) -> None:
    found = issues(HEAD + """\
tasks:
  - id: dag
    type: test.flow.Graph
    tasks:
      - task: {id: a, type: test.core.Shout, text: a}
        dependsOn: [c]
      - task: {id: b, type: test.core.Shout, text: b}
        dependsOn: [a, zz]
      - task: {id: c, type: test.core.Shout, text: c}
        dependsOn:
          - b
      - task: {id: d, type: test.core.Shout, text: d}
        dependsOn: [d]
""")
    assert located(found) == [
        (8, 9, "dependency cycle: a -> c -> b -> a"),
        (10, 24, "unknown task 'zz' in dependsOn; the tasks of this Dag are: a, b, c, d"),
        (15, 9, "dependency cycle: d -> d"),
    ]
    assert found[1].path == "tasks[0].tasks[1].dependsOn[1]"


def test_dag_with_an_invalid_child_still_checks_dependencies(issues: Issues) -> None:
    found = issues(HEAD + """\
tasks:
  - id: dag
    type: test.flow.Graph
    tasks:
      - task: {id: a, type: test.core.Shout}
      - task: {id: b, type: test.core.Shout, text: b}
        dependsOn: [a, x]
""")
    assert located(found) == [
        (7, 9, "field required: 'text'"),  # at the key holding the task
        (9, 24, "unknown task 'x' in dependsOn; the tasks of this Dag are: a, b"),
    ]


# -- triggers and inputs -----------------------------------------------------------------------

def test_triggers_types_and_ids(issues: Issues, registry: PluginRegistry) -> None:
    src = HEAD + """\
tasks:
  - {id: a, type: test.core.Shout, text: x}
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@daily"
  - id: poll
    type: acme.trigger.Poll
  - id: daily
    type: kray.core.trigger.Webhook
    key: abc
  - type: io.kestra.plugin.core.trigger.Schedul
"""
    found = issues(src)
    assert located(found) == [
        (10, 11, "unknown trigger type 'acme.trigger.Poll'"),
        (11, 9, "duplicate trigger id 'daily'"),
        (14, 5, "field required: 'id'"),
        (14, 11, "unknown trigger type 'io.kestra.plugin.core.trigger.Schedul'; did you mean "
                 "io.kestra.plugin.core.trigger.Schedule, kray.core.trigger.Schedule, "
                 "io.kestra.core.models.triggers.types.Schedule?"),
    ]
    registry.register_trigger_type("acme.trigger.Poll")
    assert [i.message for i in issues(src)][0] == "duplicate trigger id 'daily'"


def test_input_declarations(issues: Issues) -> None:
    found = issues(HEAD + """\
inputs:
  - id: s
    type: STRNG
  - id: r
    type: STRING
    validator: "[a-"
  - id: arr
    type: ARRAY
  - id: sel
    type: SELECT
  - id: age
    type: INT
    min: 18
    defaults: 3
  - id: s
    type: string
  - id: 'bad id'
    type: STRING
  - id: a.b
    type: STRING
  - id: a
    type: JSON
tasks:
  - {id: a, type: test.core.Shout, text: x}
""")
    assert [(i.line, i.column, i.path, i.message) for i in found] == [
        (5, 11, "inputs[0].type", "unknown input type 'STRNG'; did you mean STRING?"),
        (8, 5, "inputs[1].validator",
         "invalid regular expression: unterminated character set at position 0"),
        (9, 5, "inputs[2]", "an ARRAY input needs 'itemType'"),
        (11, 5, "inputs[3]", "a SELECT input needs 'values'"),
        (16, 5, "inputs[4].defaults", "invalid defaults: must be >= 18"),
        (17, 9, "inputs[5].id", "duplicate input id 's'"),
        (19, 5, "inputs[6].id", "invalid value 'bad id' for 'id': string should match pattern "
                                "'^[a-zA-Z0-9][.a-zA-Z0-9_-]*$'"),
        (21, 9, "inputs[7].id", "input id 'a.b' conflicts with input 'a'"),
    ]


def test_input_declarations_inside_a_task_are_checked(issues: Issues) -> None:
    found = issues(HEAD + """\
tasks:
  - id: hold
    type: test.flow.Hold
    onResume:
      - id: ok
        type: BOOLEAN
      - id: choice
        type: SELEC
      - id: n
        type: INT
        max: 3
        defaults: 4
""")
    assert [(i.line, i.column, i.path, i.message) for i in found] == [
        (10, 15, "tasks[0].onResume[1].type",
         "unknown input type 'SELEC'; did you mean SELECT, MULTISELECT?"),
        (14, 9, "tasks[0].onResume[2].defaults", "invalid defaults: must be <= 3"),
    ]


def test_old_input_name_spelling_is_accepted(parse: Parse) -> None:
    flow = parse(HEAD + "inputs:\n  - name: x\n    type: int\ntasks:\n"
                        "  - {id: a, type: test.core.Shout, text: x}\n")
    assert flow.inputs[0].id == "x" and flow.inputs[0].type == "INT"


def test_duplicate_flow_output_ids(issues: Issues) -> None:
    found = issues(HEAD + "tasks:\n  - {id: a, type: test.core.Shout, text: x}\noutputs:\n"
                          "  - {id: o, value: 1}\n  - {id: o, value: 2}\n")
    assert located(found) == [(7, 10, "duplicate output id 'o'")]


# -- templates ---------------------------------------------------------------------------------

def test_template_syntax_of_task_properties_outputs_and_variables(issues: Issues) -> None:
    if template_checker() is None:
        pytest.skip("kray.templating.TemplateEngine is not importable yet")
    found = issues(HEAD + """\
variables:
  ok: "{{ inputs.x }}"
  bad: "{{ inputs.x "
tasks:
  - id: a
    type: test.core.Echo
    message: "{{ outputs.x.value }"
    options:
      nested: ["{% if %}"]
  - id: b
    type: test.core.Shout
    text: "plain {text} and {{ fine }}"
outputs:
  - id: o
    value: "{{ }}"
""")
    assert [(i.line, i.column, i.path) for i in found] == [
        (5, 8, "variables.bad"),
        (9, 14, "tasks[0].message"),
        (11, 16, "tasks[0].options.nested[0]"),
        (17, 12, "outputs[0].value"),
    ]
    assert all(i.message.startswith("invalid template: ") for i in found)


# -- files -------------------------------------------------------------------------------------

def test_load_flow_and_load_flows(tmp_path: Path, registry: PluginRegistry) -> None:
    good = "id: {id}\nnamespace: team\ntasks:\n  - {{id: a, type: test.core.Shout, text: x}}\n"
    (tmp_path / "a.yaml").write_text(good.format(id="one"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(good.format(id="two"))
    (tmp_path / "notes.txt").write_text("not a flow")
    flow = load_flow(tmp_path / "a.yaml", registry)
    assert flow.id == "one" and flow.path == str(tmp_path / "a.yaml")
    assert [f.id for f in load_flows(tmp_path, registry)] == ["one", "two"]


def test_load_flows_gathers_the_errors_of_every_file(tmp_path: Path,
                                                     registry: PluginRegistry) -> None:
    (tmp_path / "a.yaml").write_text("id: a\nnamespace: team\ntasks: []\n")
    (tmp_path / "b.yaml").write_text("id: b\nnamespace: team\ntasks: [\n")
    (tmp_path / "c.yaml").write_text(
        "id: c\nnamespace: team\ntasks:\n  - {id: a, type: test.core.Shout, text: x}\n")
    (tmp_path / "d.yaml").write_text(
        "namespace: team\nid: c\ntasks:\n  - {id: a, type: test.core.Shout, text: x}\n")
    with pytest.raises(FlowValidationError) as info:
        load_flows(tmp_path, registry)
    found = [(Path(i.file or "").name, i.line, i.column) for i in info.value.issues]
    assert found == [("a.yaml", 3, 1), ("b.yaml", 4, 1), ("d.yaml", 2, 5)]
    assert info.value.issues[2].message == (
        f"flow 'team/c' is also defined in {tmp_path / 'c.yaml'}")


def test_load_flows_of_a_missing_directory(tmp_path: Path, registry: PluginRegistry) -> None:
    with pytest.raises(FlowValidationError, match="not a directory"):
        load_flows(tmp_path / "nope", registry)
