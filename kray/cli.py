"""The ``kray`` command.

Exit codes of ``kray run``: 0 SUCCESS or WARNING, 1 FAILED / KILLED / CANCELLED, 2 an invalid
flow or invalid inputs (no execution started).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from kray import __version__
from kray.errors import FlowValidationError, KrayError

STYLES = {"SUCCESS": "green", "WARNING": "yellow", "FAILED": "red", "KILLED": "red",
          "CANCELLED": "red", "RUNNING": "cyan", "SKIPPED": "dim", "PAUSED": "magenta",
          "RETRYING": "yellow", "CREATED": "dim", "QUEUED": "dim"}
LOG_STYLES = {"ERROR": "red", "WARN": "yellow", "DEBUG": "dim", "TRACE": "dim"}


@click.group()
@click.version_option(__version__, prog_name="kray")
def main() -> None:
    """kray: Kestra-language YAML flows, run on Ray."""


def _parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=what)
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def _print_issues(err: FlowValidationError) -> None:
    console = _console(stderr=True)
    for issue in err.issues:
        location = f"{issue.file or '<flow>'}:{issue.line or 0}:{issue.column or 0}"
        field = f" {issue.path}:" if issue.path else ""
        console.print(f"[bold]{location}[/]:{field} {issue.message}", highlight=False,
                      markup=True, soft_wrap=True)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console
    return Console(stderr=stderr, highlight=False)


class Progress:
    """Prints each task run as it starts and ends, with its duration, and logs as they come."""

    def __init__(self, console: Any):
        self.console = console
        self.seen: dict[str, str] = {}

    def __call__(self, execution: dict, logs: list[dict]) -> None:
        for tr in execution.get("taskRuns", []):
            state = tr["state"]
            if self.seen.get(tr["id"]) == state:
                continue
            previous = self.seen.get(tr["id"])
            self.seen[tr["id"]] = state
            label = tr["taskId"] + (f" [{_short(tr['value'])}]" if tr.get("value") is not None
                                    else "")
            if state in ("RUNNING", "CREATED") and previous is None:
                self.console.print(f"[cyan]▶[/] {_esc(label)}")
            elif state in STYLES and state not in ("RUNNING", "CREATED"):
                style = STYLES[state]
                took = _duration(tr.get("startDate"), tr.get("endDate"))
                extra = f" [dim]{_esc(tr['error'])}[/]" if tr.get("error") and state in (
                    "FAILED", "RETRYING", "WARNING") else ""
                self.console.print(f"[{style}]■ {_esc(label)} {state}[/] {took}{extra}")
        for line in logs:
            style = LOG_STYLES.get(line.get("level", "INFO"), "")
            text = f"  [dim]{_esc(line.get('taskId', ''))}[/] {line.get('level', 'INFO'):5} " \
                   f"{_esc(str(line.get('message', '')))}"
            self.console.print(f"[{style}]{text}[/]" if style else text)


def _short(value: object, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _esc(text: str) -> str:
    from rich.markup import escape
    return escape(text)


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    ms = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def execution_summary(execution: dict) -> dict:
    """The ``--json`` document: a stable subset of the execution."""
    return {
        "id": execution["id"], "namespace": execution["namespace"],
        "flowId": execution["flowId"], "state": execution["state"],
        "startDate": execution["startDate"], "endDate": execution["endDate"],
        "labels": execution.get("labels") or {},
        "outputs": execution.get("outputs") or {}, "error": execution.get("error"),
        "taskRuns": [{
            "id": tr["id"], "taskId": tr["taskId"], "parentTaskRunId": tr["parentTaskRunId"],
            "value": tr["value"], "state": tr["state"], "startDate": tr["startDate"],
            "endDate": tr["endDate"],
            "attempts": [{"state": a["state"], "startDate": a["startDate"],
                          "endDate": a["endDate"]} for a in tr["attempts"]],
            "outputs": tr["outputs"], "error": tr.get("error"),
        } for tr in execution.get("taskRuns", [])],
    }


@main.command()
@click.argument("flow", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE",
              help="An input (repeatable). KEY=@path uploads a FILE input.")
@click.option("--flows", "flows_dir", type=click.Path(exists=True, file_okay=False),
              help="A folder of other flows to load alongside (for Subflow).")
@click.option("--json", "as_json", is_flag=True,
              help="Progress to stderr; stdout gets one JSON object, the final execution.")
@click.option("--address", envvar="RAY_ADDRESS", default=None,
              help="A Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray).")
@click.option("--data-dir", default=".kray", show_default=True,
              help="Where the DuckDB file and internal storage live.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
def run(flow: str, inputs: tuple[str, ...], flows_dir: str | None, as_json: bool,
        address: str | None, data_dir: str, labels: tuple[str, ...]) -> None:
    """Run FLOW (a YAML file) to its end, showing live progress."""
    from kray.runner import RunOptions, exit_code, run_flow

    console = _console(stderr=as_json)
    options = RunOptions(inputs=_parse_pairs(inputs, "--input"), flows_dir=flows_dir,
                         address=address, data_dir=data_dir,
                         labels=_parse_pairs(labels, "--label"))
    try:
        execution = run_flow(flow, options, on_update=Progress(console))
    except FlowValidationError as e:
        _print_issues(e)
        sys.exit(2)
    except KrayError as e:
        console.print(f"[red]error:[/] {_esc(str(e))}")
        sys.exit(2)
    state = execution["state"]
    style = STYLES.get(state, "")
    took = _duration(execution.get("startDate"), execution.get("endDate"))
    console.print(f"[bold {style}]{execution['namespace']}.{execution['flowId']} "
                  f"{execution['id']} {state}[/] {took}")
    if execution.get("error"):
        console.print(f"[red]{_esc(execution['error'])}[/]")
    if as_json:
        sys.stdout.write(json.dumps(execution_summary(execution), default=str) + "\n")
        sys.stdout.flush()
    elif execution.get("outputs"):
        console.print_json(json.dumps(execution["outputs"], default=str))
    sys.exit(exit_code(state))


@main.group()
def flow() -> None:
    """Work with flow files."""


@flow.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def validate(paths: tuple[str, ...]) -> None:
    """Check flow files (or folders of them) without running anything."""
    from kray.flow.parse import load_flow, load_flows

    issues = []
    count = 0
    for path in paths:
        try:
            if Path(path).is_dir():
                count += len(load_flows(path))
            else:
                load_flow(path)
                count += 1
        except FlowValidationError as e:
            issues.extend(e.issues)
    if issues:
        _print_issues(FlowValidationError(issues))
        sys.exit(2)
    _console().print(f"[green]{count} flow(s) valid[/]")


from kray.server import server  # noqa: E402  (``kray server local|start|token``)

main.add_command(server)

from kray.plugins_cli import plugins  # noqa: E402  (``kray plugins list|schema``)
main.add_command(plugins)


if __name__ == "__main__":  # pragma: no cover
    main()
