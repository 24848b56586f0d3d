"""Script tasks inside whole flows, stepped in-process by ``kray.inline.InlineRunner``."""

from __future__ import annotations

from pathlib import Path

from kray.flow.parse import load_flow, parse_flow
from kray.inline import InlineRunner
from tests.conftest import ROOT
from tests.flows.golden import check, outputs_map

CHAIN = """
id: chain
namespace: tests.scripts
tasks:
  - id: produce
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.csv"]
    commands:
      - printf 'id\\n1\\n2\\n3\\n' > data.csv
      - echo '::{"outputs":{"table":"numbers"}}::'
  - id: count
    type: io.kestra.plugin.scripts.python.Script
    inputFiles:
      in.csv: "{{ outputs.produce.outputFiles['data.csv'] }}"
    script: |
      from kray.script import outputs
      rows = open("in.csv").read().split()[1:]
      outputs({"rows": len(rows), "table": "{{ outputs.produce.vars.table }}"})
  - id: report
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.count.vars.table }}={{ outputs.count.vars.rows }}"
"""

SHARED = """
id: shared
namespace: tests.scripts
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: write
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "written by {{ task.id }}" > shared.txt
          - pwd
      - id: read
        type: io.kestra.plugin.scripts.shell.Script
        outputFiles: [shared.txt]
        script: |
          pwd
          echo "::{\\"outputs\\": {\\"content\\": \\"$(cat shared.txt)\\"}}::"
      - id: clash
        type: io.kestra.plugin.scripts.shell.Commands
        allowFailure: true
        namespaceFiles: {enabled: true, ifExists: FAIL}
        commands: ["echo never"]
"""


def run(tmp_path: Path, source: str) -> tuple[dict, InlineRunner]:
    runner = InlineRunner(tmp_path)
    execution = runner.run(parse_flow(source))
    return execution.to_dict(), runner


def test_outputs_and_files_flow_from_task_to_task(tmp_path: Path) -> None:
    doc, runner = run(tmp_path, CHAIN)
    check(doc, {"state": "SUCCESS", "taskRuns": 3,
                "outputs": {"produce": {"exitCode": 0, "vars": {"table": "numbers"}},
                            "count": {"vars": {"rows": 3}},
                            "report": {"value": "numbers=3"}}})
    uri = outputs_map(doc)["produce"]["outputFiles"]["data.csv"]
    assert runner.storage.read(uri) == b"id\n1\n2\n3\n"


def test_tasks_in_a_working_directory_share_one_folder(tmp_path: Path) -> None:
    runner = InlineRunner(tmp_path)
    runner.storage.put("tests/scripts/_files/shared.txt", b"from the namespace")
    doc = runner.run(parse_flow(SHARED)).to_dict()
    check(doc, {"state": "WARNING", "taskRuns": 4,
                "states": {"write": "SUCCESS", "read": "SUCCESS", "clash": "WARNING"},
                "outputs": {"read": {"vars": {"content": "written by write"}}}})
    logs = {line["taskId"]: [] for line in runner.logs[doc["id"]]}
    for line in runner.logs[doc["id"]]:
        logs[line["taskId"]].append(line["message"])
    assert logs["write"] == logs["read"]  # the same pwd
    uri = outputs_map(doc)["read"]["outputFiles"]["shared.txt"]
    assert runner.storage.read(uri) == b"written by write\n"
    clash = next(r for r in doc["taskRuns"] if r["taskId"] == "clash")
    assert "already exists" in clash["error"]


def test_the_example_flow_runs(tmp_path: Path) -> None:
    flow = load_flow(ROOT / "examples" / "scripts.yaml")
    doc = InlineRunner(tmp_path).run(flow, {"rows": 4}).to_dict()
    check(doc, {"state": "SUCCESS"})
    assert doc["outputs"]["summary"] == "4 rows, total 10"
