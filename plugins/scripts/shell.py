"""Shell script tasks: ``Commands`` (a list of commands) and ``Script`` (one script)."""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kray.plugins.scripts.base import K, ScriptRun, ScriptTask, as_list, script_file


class Commands(ScriptTask):
    """Run ``commands`` one after the other in one shell (``interpreter``, default
    ``/bin/sh -c``). With ``failFast`` (default true) the first failing command ends the run
    (``set -e``); otherwise the last command's exit code decides.

    Outputs ``exitCode``, ``vars`` (from ``::{"outputs": {...}}::`` lines) and
    ``outputFiles`` ({name: kray URI} for ``outputFiles`` globs and ``{{ outputDir }}``).
    """

    type_name: ClassVar[str] = "kray.scripts.shell.Commands"
    aliases: ClassVar[tuple[str, ...]] = (K + "shell.Commands",)

    commands: list[str] = Field(min_length=1)

    @field_validator("commands", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return as_list(v)

    def main(self, run: ScriptRun) -> list[str]:
        return [str(c) for c in run.render(self.commands)]


class Script(ScriptTask):
    """Run the rendered ``script`` with the shell (``interpreter``) after
    ``beforeCommands``. The script is written to a file outside the working folder and
    sourced, so ``set -e`` (``failFast``) and ``exit`` behave as if it were inline. Outputs as
    ``Commands``."""

    type_name: ClassVar[str] = "kray.scripts.shell.Script"
    aliases: ClassVar[tuple[str, ...]] = (K + "shell.Script",)

    script: str

    def main(self, run: ScriptRun) -> list[str]:
        path = script_file(run.scratch, f"{self.id}.sh", run.render_str(self.script))
        return [f". {shlex.quote(str(path))}"]


class Bash(Commands):
    """Kestra's deprecated ``io.kestra.core.tasks.scripts.Bash``: ``Commands`` with its older
    spellings, ``interpreter`` as one program, ``interpreterArgs`` and ``exitOnFailed``."""

    type_name: ClassVar[str] = "kray.scripts.shell.Bash"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.core.tasks.scripts.Bash",)

    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh"], min_length=1)
    interpreter_args: list[str] = Field(default_factory=lambda: ["-c"])
    exit_on_failed: bool = True

    def stops_on_error(self) -> bool:
        return self.fail_fast and self.exit_on_failed

    def launcher(self) -> list[str]:
        return [*self.interpreter, *self.interpreter_args]


TASKS = [Commands, Script, Bash]
