"""Node.js script tasks: ``Script`` (inline JavaScript run with ``node``) and ``Commands``
(shell commands, e.g. ``node main.js``). Node must be installed on the worker."""

from __future__ import annotations

import shlex
from typing import ClassVar

from kray.plugins.scripts.base import K, ScriptRun, ScriptTask, script_file
from kray.plugins.scripts.shell import Commands as ShellCommands


class Script(ScriptTask):
    """Run the rendered ``script`` with ``node`` after ``beforeCommands``. Outputs as the
    shell tasks (``console.log('::' + JSON.stringify({outputs: {...}}) + '::')``)."""

    type_name: ClassVar[str] = "kray.scripts.node.Script"
    aliases: ClassVar[tuple[str, ...]] = (K + "node.Script",)

    script: str

    def main(self, run: ScriptRun) -> list[str]:
        path = script_file(run.scratch, f"{self.id}.js", run.render_str(self.script))
        return [f"node {shlex.quote(str(path))}"]


class Commands(ShellCommands):
    """Run shell ``commands`` (``node main.js`` ...): the shell ``Commands`` under Kestra's
    Node.js name."""

    type_name: ClassVar[str] = "kray.scripts.node.Commands"
    aliases: ClassVar[tuple[str, ...]] = (K + "node.Commands",)


TASKS = [Script, Commands]
