"""The plugin SDK: JSON Schemas of the task types, ``kray plugins list|schema``, the example
third-party plugin (registered directly, through a real entry point, and its own tests), and
``kray.testing.run_flow``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kray.cli import main
from kray.errors import FlowValidationError, InputValidationError
from kray.flow.parse import parse_flow
from kray.registry import PluginRegistry
from kray.schema import all_schemas, describe, plugin_of, task_schema
from kray.testing import TaskRunner, run_flow
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "plugin-example"


# -- schemas ---------------------------------------------------------------------------------

def test_every_registered_type_exports_a_schema() -> None:
    registry = PluginRegistry.default()
    document = json.loads(json.dumps(all_schemas(registry)))  # plain JSON all the way
    assert set(document["tasks"]) == set(registry.canonical())
    for name, schema in document["tasks"].items():
        cls = registry.resolve(name)
        assert schema["properties"]["type"]["enum"] == [name, *cls.aliases]
        assert schema["x-kray"]["type"] == name
        assert schema["x-kray"]["kind"] in ("runnable", "flowable")
        assert schema["required"][:2] == ["id", "type"]
        assert schema["additionalProperties"] is False
        for alias in cls.aliases:
            assert document["aliases"][alias] == name


def test_schema_shape_of_a_flowable_and_a_runnable() -> None:
    registry = PluginRegistry.default()
    seq = task_schema(registry.resolve("io.kestra.plugin.core.flow.Sequential"))
    assert seq["title"] == "Sequential"
    assert seq["description"].startswith("Run ``tasks`` one after another")
    assert seq["properties"]["tasks"]["items"] == {"$ref": "#/$defs/Task"}
    assert "finally" in seq["properties"] and "allowFailure" in seq["properties"]
    assert seq["$defs"]["Task"]["required"] == ["id", "type"]
    assert seq["x-kray"] == {"type": "kray.core.flow.Sequential",
                             "aliases": ["io.kestra.plugin.core.flow.Sequential",
                                         "io.kestra.core.tasks.flows.Sequential"],
                             "kind": "flowable", "plugin": "core"}
    req = task_schema(registry.resolve("kray.http.Request"))
    assert req["x-kray"]["plugin"] == "http" and req["x-kray"]["kind"] == "runnable"
    assert req["$defs"]["HttpOptions"]["properties"]["allowFailed"]["description"]
    split = task_schema(registry.resolve("kray.core.storage.Split"))
    assert "from" in split["properties"] and "from_" not in split["properties"]


def test_schemas_accept_valid_tasks_and_reject_typos() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    registry = PluginRegistry.default()
    log = task_schema(registry.resolve("io.kestra.plugin.core.log.Log"))
    jsonschema.validate({"id": "hi", "type": "io.kestra.plugin.core.log.Log",
                         "message": "hello", "retry": {"type": "constant",
                                                       "interval": "PT1S"}}, log)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "hi", "type": "kray.core.log.Log", "mesage": "x"}, log)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "hi", "type": "kray.core.debug.Return", "message": "x"},
                            log)
    seq = task_schema(registry.resolve("kray.core.flow.Sequential"))
    jsonschema.validate({"id": "s", "type": "kray.core.flow.Sequential",
                         "tasks": [{"id": "a", "type": "anything", "x": 1}]}, seq)
    with pytest.raises(jsonschema.ValidationError):  # a child without its type
        jsonschema.validate({"id": "s", "type": "kray.core.flow.Sequential",
                             "tasks": [{"id": "a"}]}, seq)


# -- the CLI ---------------------------------------------------------------------------------

def test_plugins_list() -> None:
    result = CliRunner().invoke(main, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("kray.http.Request"))
    assert "io.kestra.plugin.core.http.Request" in line
    assert line.split()[-2:] == ["runnable", "http"]
    assert "kray.core.flow.ForEachItem" in result.output
    result = CliRunner().invoke(main, ["plugins", "list", "--json"])
    rows = {r["type"]: r for r in json.loads(result.output)}
    assert rows["kray.core.flow.Subflow"]["kind"] == "flowable"
    assert "io.kestra.plugin.core.flow.Flow" in rows["kray.core.flow.Subflow"]["aliases"]
    assert rows["kray.core.storage.FilterItems"]["description"].startswith("Keep")


def test_plugins_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plugins", "schema", "io.kestra.plugin.core.kv.Set"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["x-kray"]["type"] == "kray.core.kv.Set"
    out = tmp_path / "schemas.json"
    result = CliRunner().invoke(main, ["plugins", "schema", "--output", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert "kray.core.log.Log" in document["tasks"]
    assert document["aliases"]["io.kestra.plugin.core.log.Log"] == "kray.core.log.Log"
    result = CliRunner().invoke(main, ["plugins", "schema", "kray.core.log.Logg"])
    assert result.exit_code == 2
    assert "did you mean kray.core.log.Log" in result.output


# -- the example third-party plugin ----------------------------------------------------------

@pytest.fixture
def example_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    src = EXAMPLE / "src"
    monkeypatch.syspath_prepend(str(src))
    return src


def test_example_registers_on_a_fresh_registry(example_path: Path, tmp_path: Path) -> None:
    import acme_text

    registry = PluginRegistry()
    acme_text.register(registry)
    assert registry.resolve("com.acme.text.WordCount") is acme_text.WordCount
    assert plugin_of(acme_text.WordCount, []) == "acme_text"
    with TaskRunner(tmp_path, registry=registry) as runner:
        result = runner.run({"id": "c", "type": "acme.text.WordCount", "text": "a b c"})
    assert result.state == "SUCCESS" and result.outputs["words"] == 3
    schema = task_schema(acme_text.WordCount)
    assert schema["properties"]["from"]["anyOf"][0] == {"type": "string"}
    assert schema["properties"]["type"]["enum"] == ["acme.text.WordCount",
                                                    "com.acme.text.WordCount"]


def fake_install(site: Path) -> None:
    """What ``pip install`` leaves for importlib.metadata: a dist-info with the entry point."""
    info = site / "kray_plugin_acme_text-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kray-plugin-acme-text\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text("[kray.plugins]\nacme-text = acme_text:register\n")


def test_example_loads_through_its_entry_point(example_path: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = PluginRegistry()
    assert registry.load_entry_points() == []
    assert "acme.text.WordCount" in registry
    assert "kray.core.log.Log" in registry
    row = next(i for i in describe(registry) if i.name == "acme.text.WordCount")
    assert (row.kind, row.plugin) == ("runnable", "acme-text")


def test_kray_plugins_list_shows_an_installed_plugin(tmp_path: Path) -> None:
    fake_install(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "site"), str(EXAMPLE / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "kray.cli", "plugins", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {r["type"]: r for r in json.loads(proc.stdout)}
    assert rows["acme.text.WordCount"]["plugin"] == "acme-text"


def test_a_broken_plugin_is_reported_not_fatal(tmp_path: Path) -> None:
    info = tmp_path / "site" / "broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[kray.plugins]\nbroken = no_such_module:register\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-m", "kray.cli", "plugins", "list"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 1
    assert "kray.core.log.Log" in proc.stdout
    assert "plugin failed to load: broken: ModuleNotFoundError" in proc.stderr


def test_example_plugin_own_tests_pass() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:benchmark"],
                          capture_output=True, text=True, timeout=300, cwd=EXAMPLE, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


# -- kray.testing.run_flow -------------------------------------------------------------------

CHILD = """
id: child
namespace: sdk
inputs:
  - id: word
    type: STRING
tasks:
  - id: up
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.word | upper }}"
outputs:
  - id: shout
    type: STRING
    value: "{{ outputs.up.value }}"
"""

PARENT = """
id: parent
namespace: sdk
inputs:
  - id: word
    type: STRING
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: sdk
    flowId: child
    inputs:
      word: "{{ inputs.word }}"
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1H
outputs:
  - id: said
    type: STRING
    value: "{{ outputs.call.outputs.shout }}"
"""


def test_run_flow_from_text_file_or_model(tmp_path: Path) -> None:
    child_file = tmp_path / "child.yaml"
    child_file.write_text(CHILD)
    execution = run_flow(PARENT, {"word": "hi"}, flows=[child_file], base_dir=tmp_path / "a")
    assert execution.state.current == "SUCCESS", execution.error
    assert execution.outputs == {"said": "HI"}  # the hour-long pause cost no time
    execution = run_flow(parse_flow(CHILD), {"word": "yo"}, labels={"team": "x"})
    assert execution.outputs == {"shout": "YO"} and execution.labels == {"team": "x"}


def test_run_flow_validates_flows_and_inputs() -> None:
    with pytest.raises(FlowValidationError, match="unknown type"):
        run_flow("id: x\nnamespace: sdk\ntasks:\n  - id: a\n    type: nope.Task\n")
    with pytest.raises(InputValidationError):
        run_flow(CHILD, {})
