"""Python script tasks: ``Script`` (inline Python) and ``Commands`` (shell commands that run
Python), optionally in a cached virtual environment built from ``dependencies``.

Which Python: without ``dependencies``, the interpreter running kray (so a script sees the
same packages as the worker); with them, the cached environment for those requirements
(``venv``). Either way ``python`` and ``python3`` on the script's PATH name that interpreter,
and ``from kray.script import outputs`` works: in an environment, through a folder on
``PYTHONPATH`` holding ``kray/script.py`` alone (nothing else of kray is visible there).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kray.plugins.scripts import venv
from kray.plugins.scripts.base import K, ScriptRun, ScriptTask, as_list, script_file


def _helper_source() -> Path:
    import kray.script

    return Path(kray.script.__file__).resolve()


class _Python(ScriptTask):
    """What both Python tasks share: ``dependencies`` and the interpreter they imply."""

    dependencies: list[str] = Field(default_factory=list)

    @field_validator("dependencies", mode="before")
    @classmethod
    def _deps(cls, v: Any) -> Any:
        return as_list(v)

    def prepare(self, run: ScriptRun) -> None:
        ctx, env, scratch = run.ctx, run.env, run.scratch
        reqs = [str(r) for r in run.render(self.dependencies)]
        bin_dir = scratch / "bin"
        bin_dir.mkdir()
        if venv.normalize(reqs):
            folder, built = venv.ensure(reqs, log=ctx.logger.info, env=dict(env))
            if not built:
                ctx.logger.debug(f"using the cached virtual environment {folder}")
            python = venv.python_of(folder)
            env["VIRTUAL_ENV"] = str(folder)
            path = [str(bin_dir), str(folder / "bin")]
            lib = scratch / "pylib" / "kray"  # a namespace package holding the helper only
            lib.mkdir(parents=True)
            (lib / "script.py").symlink_to(_helper_source())
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(scratch / "pylib"), env.get("PYTHONPATH")) if p)
        else:
            python = Path(sys.executable)
            path = [str(bin_dir)]
        for name in ("python", "python3"):
            # A wrapper, not a symlink: Python finds its environment from the path it is
            # started by, and a symlink would hide a virtual environment kray runs in.
            wrapper = bin_dir / name
            wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(str(python))} "$@"\n')
            wrapper.chmod(0o755)
        env["PATH"] = os.pathsep.join([*path, env.get("PATH") or os.defpath])
        run.python = str(python)


class Script(_Python):
    """Run the rendered ``script`` with Python, after ``beforeCommands`` (shell commands).

    ``dependencies`` (pip requirement strings) are installed once into a cached virtual
    environment shared by every run that asks for the same ones. Outputs ``exitCode``,
    ``vars`` (``from kray.script import outputs; outputs({...})``) and ``outputFiles``.
    """

    type_name: ClassVar[str] = "kray.scripts.python.Script"
    aliases: ClassVar[tuple[str, ...]] = (K + "python.Script",)

    script: str

    def main(self, run: ScriptRun) -> list[str]:
        path = script_file(run.scratch, f"{self.id}.py", run.render_str(self.script))
        return [f"{shlex.quote(run.python or sys.executable)} {shlex.quote(str(path))}"]


class Commands(_Python):
    """Run shell ``commands`` (``python main.py`` ...) with the task's Python first on PATH.
    Same options and outputs as ``Script``."""

    type_name: ClassVar[str] = "kray.scripts.python.Commands"
    aliases: ClassVar[tuple[str, ...]] = (K + "python.Commands",)

    commands: list[str] = Field(min_length=1)

    @field_validator("commands", mode="before")
    @classmethod
    def _list(cls, v: Any) -> Any:
        return as_list(v)

    def main(self, run: ScriptRun) -> list[str]:
        return [str(c) for c in run.render(self.commands)]


TASKS = [Script, Commands]
