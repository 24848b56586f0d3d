"""``ScriptTask``: what every script task shares (Kestra's ``AbstractExecScript``).

A script task runs a shell command line built from ``beforeCommands`` and the task's own
commands, with ``interpreter`` (default ``/bin/sh -c``), as a process on the Ray worker, in
the task's working folder (``{{ workingDir }}``; inside a ``WorkingDirectory``, the folder its
tasks share). Its lines are logged as they come and may carry outputs (``protocol``); the
files it leaves are uploaded (``files``). Outputs: ``exitCode``, ``vars``, ``outputFiles``.

Choices where kray differs from Kestra, and why:

* ``taskRunner`` defaults to ``Process``: the worker already is the isolation unit Ray
  schedules. ``Docker`` is not implemented; a task asking for it fails with a clear error
  (which also says whether a Docker engine answered). ``containerImage`` is accepted and
  ignored by the Process runner, as in Kestra.
* ``warningOnStdErr`` defaults to **false**, as in Kestra since 0.23: a script's exit code
  alone decides its state. ``warningOnStdErr: true`` brings back the older rule (any stderr
  line makes the task WARNING).
* The script inherits the worker's environment, except secrets (``KRAY_SECRET_*`` and
  Kestra's ``SECRET_*``): a script gets a secret only through ``env`` and
  ``{{ secret('NAME') }}``, which also masks it in the log. ``PYTHONUNBUFFERED=1`` is set so
  that Python's prints stream live.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from kray.engine.state import State
from kray.errors import TaskError
from kray.plugins.scripts import files, process
from kray.plugins.scripts.protocol import ScriptOutput
from kray.storage.secrets import KESTRA_PREFIX, PLAIN_PREFIX
from kray.task import Model, RunnableTask

if TYPE_CHECKING:
    from kray.context import RunContext

K = "io.kestra.plugin.scripts."
# A command line longer than this goes through a file: Linux refuses a single argument of
# more than 128 KiB (MAX_ARG_STRLEN).
MAX_INLINE = 100_000
RUNNERS = ("process", "docker")


def as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


@dataclass
class ScriptRun:
    """One run of a script task, as its hooks see it."""

    ctx: RunContext
    extra: dict[str, Any]  # template variables added for this run: workingDir, outputDir
    scratch: Path  # a private folder outside the working folder, removed after the run
    env: dict[str, str]  # the script's environment
    python: str | None = None  # the Python interpreter a Python task runs

    def render(self, value: Any) -> Any:
        return self.ctx.render(value, self.extra)

    def render_str(self, value: Any) -> str:
        return self.ctx.render_str(value, self.extra)


class TaskRunnerSpec(Model):
    """``taskRunner``: ``{type: io.kestra.plugin.core.runner.Process}`` (or just ``Process``),
    or ``Docker``. Other keys (the Docker runner's options) are accepted."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    type: str

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v.rsplit(".", 1)[-1].lower() not in RUNNERS:
            raise ValueError(f"unsupported taskRunner '{v}': kray runs scripts with "
                             "io.kestra.plugin.core.runner.Process")
        return v

    @property
    def kind(self) -> str:
        return self.type.rsplit(".", 1)[-1].lower()


class NamespaceFilesSpec(Model):
    """``namespaceFiles``: copy the namespace's files into the working folder."""

    enabled: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    namespaces: list[str] | None = None  # default: the flow's namespace
    if_exists: Literal["OVERWRITE", "FAIL", "WARN", "IGNORE"] = "OVERWRITE"
    folder_per_namespace: bool = False

    @field_validator("include", "exclude", "namespaces", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return as_list(v)


class ScriptTask(RunnableTask):
    """Common properties of script tasks. Subclasses implement ``main`` (and may ``prepare``).

    ``beforeCommands`` (shell lines run first), ``env`` (rendered, added to the worker's
    environment), ``interpreter`` (what the command line is handed to), ``inputFiles``,
    ``namespaceFiles``, ``outputFiles`` (globs), ``failFast`` (``set -e``, default true),
    ``warningOnStdErr`` (default false), ``taskRunner``/``containerImage`` (Process only).
    Templates also see ``workingDir`` and ``outputDir``.
    """

    before_commands: list[str] = Field(default_factory=list)
    env: dict[str, Any] = Field(default_factory=dict)
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"], min_length=1)
    input_files: dict[str, Any] | str | None = None
    output_files: list[str] = Field(default_factory=list)
    namespace_files: NamespaceFilesSpec | None = None
    fail_fast: bool = True
    warning_on_std_err: bool = False
    container_image: str | None = None
    task_runner: TaskRunnerSpec | None = None
    # Kestra's older spellings, accepted so old flows still validate.
    runner: Literal["PROCESS", "DOCKER"] | None = None
    docker: dict[str, Any] | None = None
    target_os: str | None = Field(None, alias="targetOS")
    output_directory: bool | None = None  # ``{{ outputDir }}`` always exists in kray

    @field_validator("before_commands", "output_files", "interpreter", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return as_list(v)

    # -- what subclasses provide -------------------------------------------------------------
    def main(self, run: ScriptRun) -> list[str]:
        """The task's own command lines (rendered), run after ``beforeCommands``."""
        raise NotImplementedError

    def prepare(self, run: ScriptRun) -> None:
        """Adjust ``run`` before the command line is built (``run.env``'s PATH...)."""

    # -- the run -----------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> dict[str, Any]:
        self._check_runner(ctx)
        work = ctx.working_dir
        output_dir = work / files.OUTPUTS / ctx.task_run_id
        shutil.rmtree(output_dir, ignore_errors=True)  # what an earlier attempt left
        output_dir.mkdir(parents=True)
        extra = {"workingDir": str(work), "outputDir": str(output_dir)}
        ns = self.namespace_files
        if ns is not None and ns.enabled:
            n = files.copy_namespace_files(
                ctx, work, include=ns.include, exclude=ns.exclude,
                namespaces=ns.namespaces or [ctx.namespace], if_exists=ns.if_exists,
                folder_per_namespace=ns.folder_per_namespace)
            ctx.logger.debug(f"copied {n} namespace file(s) into the working folder")
        files.write_input_files(ctx, work, files.input_files(ctx, self.input_files, extra))
        env = self.base_env()
        env.update({str(k): _env_text(v) for k, v in ctx.render(self.env, extra).items()})
        output = ScriptOutput(ctx)
        with tempfile.TemporaryDirectory(prefix="kray-script-") as tmp:
            job = ScriptRun(ctx, extra, Path(tmp), env)
            self.prepare(job)
            code = process.run(self.command_line(job), cwd=work, env=env, on_line=output)
        if code != 0:
            last = f": {output.last_stderr}" if output.last_stderr else ""
            raise TaskError(f"command failed with exit code {code}{last}")
        if self.warning_on_std_err and output.stderr_lines:
            ctx.state_override = State.WARNING
        patterns = [str(p) for p in ctx.render(self.output_files, extra)]
        uploaded = files.upload_outputs(ctx, work, patterns, output_dir)
        return {"exitCode": code, "vars": output.vars, "outputFiles": uploaded}

    def command_line(self, run: ScriptRun) -> list[str]:
        """``interpreter`` + the joined script: ``set -e`` (``failFast``), the rendered
        ``beforeCommands``, then ``main``."""
        lines = ["set -e"] if self.stops_on_error() else []
        lines += [str(c) for c in run.ctx.render(self.before_commands, run.extra)]
        lines += self.main(run)
        text = "\n".join(lines)
        if len(text.encode()) > MAX_INLINE:
            path = run.scratch / "commands.sh"
            path.write_text(text + "\n", encoding="utf-8")
            text = f". {shlex.quote(str(path))}"
        return [*self.launcher(), text]

    def stops_on_error(self) -> bool:
        """Whether the command line starts with ``set -e``."""
        return self.fail_fast

    def launcher(self) -> list[str]:
        """The program and arguments that the command line is handed to."""
        return list(self.interpreter)

    @staticmethod
    def base_env() -> dict[str, str]:
        """The worker's environment without secrets, plus ``PYTHONUNBUFFERED=1``."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith((PLAIN_PREFIX, KESTRA_PREFIX))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _check_runner(self, ctx: RunContext) -> None:
        if self.task_runner is not None:
            kind = self.task_runner.kind
        else:
            kind = (self.runner or "PROCESS").lower()
        if kind == "docker":
            raise _docker_error()
        if self.container_image:
            ctx.logger.debug(f"containerImage '{self.container_image}' is ignored: the task "
                             "runs as a process on the worker")


def script_file(scratch: Path, name: str, text: str) -> Path:
    path = scratch / name
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def _env_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _docker_error() -> TaskError:
    advice = ("kray runs script tasks as processes on the Ray worker: use taskRunner: "
              "{type: io.kestra.plugin.core.runner.Process}")
    docker = shutil.which("docker")
    if docker is None:
        return TaskError(f"taskRunner Docker: no Docker engine answers (no 'docker' command "
                         f"on PATH); {advice}")
    try:
        probe = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"],
                               capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL, check=False)
        answered = probe.returncode == 0
        why = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as e:
        answered, why = False, str(e)
    if not answered:
        return TaskError(f"taskRunner Docker: no Docker engine answers ({why}); {advice}")
    return TaskError(f"taskRunner Docker is not supported by kray; {advice}")
