"""``kray plugins``: the task types this installation knows, and their JSON Schemas.

``kray plugins list`` shows a table (type, aliases, kind, plugin); plugins that failed to
load are reported on stderr, with the reason, and make the command exit 1.
``kray plugins schema [TYPE] [--output FILE]`` prints one type's JSON Schema (by its name or
an alias), or every type's as one document ``{"tasks": {...}, "aliases": {...}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kray.registry import ENTRY_POINT_GROUP, PluginRegistry


def load_registry() -> tuple[PluginRegistry, list[str]]:
    """A fresh registry with every ``kray.plugins`` entry point, and the load failures."""
    from importlib.metadata import entry_points

    registry = PluginRegistry()
    failures = registry.load_entry_points()
    if "core" not in {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}:
        from kray.plugins import core  # a source checkout without installed metadata
        core.register(registry)
    return registry, failures


def _report(failures: list[str]) -> None:
    for failure in failures:
        click.echo(f"plugin failed to load: {failure}", err=True)


@click.group("plugins")
def plugins() -> None:
    """List task types and export their JSON Schemas."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_types(as_json: bool) -> None:
    """Every task type: its name, aliases, kind (runnable/flowable) and plugin."""
    from kray.schema import describe

    registry, failures = load_registry()
    infos = describe(registry)
    if as_json:
        click.echo(json.dumps([{"type": i.name, "aliases": list(i.aliases), "kind": i.kind,
                                "plugin": i.plugin, "description": i.summary}
                               for i in infos], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("type", "aliases", "kind", "plugin"):
            table.add_column(column, overflow="fold")
        for i in infos:
            table.add_row(i.name, "\n".join(i.aliases), i.kind, i.plugin)
        Console(highlight=False, width=max(100, Console().width)).print(table)
    _report(failures)
    if failures:
        sys.exit(1)


@plugins.command("schema")
@click.argument("type_name", required=False, metavar="[TYPE]")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the schema to this file instead of stdout.")
def schema(type_name: str | None, output: str | None) -> None:
    """The JSON Schema of TYPE (a type name or alias), or of every type as one document."""
    from kray.errors import PluginNotFound
    from kray.schema import all_schemas, task_schema

    registry, failures = load_registry()
    _report(failures)
    if type_name is None:
        document = all_schemas(registry)
    else:
        try:
            cls = registry.resolve(type_name)
        except PluginNotFound as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        document = task_schema(cls)
    text = json.dumps(document, indent=2, default=str) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
