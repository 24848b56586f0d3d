"""The concrete ``RunContext``: what a runnable task sees on a worker, or in ``kray.testing``.

``Services`` gives templates their window on the world (``secret()``, ``kv()``, ``read()``,
``fileSize()``...). ``LocalRunContext`` ties together the variables, the template engine, the
storage, the KV store, the secrets and the log collector. ``execute_task`` runs one task
against a context and turns whatever happens into a ``TaskOutcome``: the worker and the test
kit share it, so a task behaves the same under test as in production.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from kray.context import RunContext
from kray.engine.state import State
from kray.errors import KrayError, TemplateError
from kray.logs import TaskLogger

if TYPE_CHECKING:
    from kray.storage.internal import InternalStorage
    from kray.storage.kv import KVStore
    from kray.storage.secrets import Masker, SecretStore
    from kray.task import RunnableTask
    from kray.templating import TemplateEngine

SCHEME = "kray://"
NAMESPACE_FILES = "_files"


def namespace_file_path(namespace: str, path: str) -> str:
    """The storage path of a namespace file: ``a.b`` + ``x/y.txt`` -> ``a/b/_files/x/y.txt``."""
    return f"{namespace.replace('.', '/')}/{NAMESPACE_FILES}/{path.lstrip('/')}"


class Services:
    """The template services of one task run (``kray.templating.TemplateServices``).

    ``secret()`` registers every value it returns with the masker, so that the value is
    masked in every later log line. File functions take a ``kray://`` URI or a namespace file
    path (relative to the namespace's ``_files`` folder).
    """

    def __init__(self, *, secrets: SecretStore, masker: Masker, kv: KVStore,
                 storage: InternalStorage, namespace: str,
                 error_logs: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.secrets = secrets
        self.masker = masker
        self.kv_store = kv
        self.storage = storage
        self.namespace = namespace
        self._error_logs = error_logs

    def secret(self, name: str) -> str:
        value = self.secrets.get(name)
        self.masker.add(value)
        return value

    def kv(self, key: str, namespace: str | None = None, error_on_missing: bool = True) -> Any:
        ns = namespace or self.namespace
        value = self.kv_store.get(ns, key)
        if value is None and error_on_missing:
            raise TemplateError(f"no KV key '{key}' in namespace '{ns}'")
        return value

    def resolve(self, path: str) -> str:
        """A ``kray://`` URI for ``path``: itself if it is one, else a namespace file's."""
        text = str(path).strip()
        if text.startswith(SCHEME):
            return text
        if not text or text == "/":
            raise TemplateError("a file path must not be empty")
        return self.storage.uri(namespace_file_path(self.namespace, text))

    def read(self, path: str) -> str:
        uri = self.resolve(path)
        try:
            return self.storage.read(uri).decode("utf-8")
        except FileNotFoundError:
            raise TemplateError(f"file not found: {path}") from None
        except UnicodeDecodeError:
            raise TemplateError(f"read(): {path} is not UTF-8 text") from None

    def file_size(self, path: str) -> int:
        uri = self.resolve(path)
        if not self.storage.exists(uri):
            raise TemplateError(f"file not found: {path}")
        return int(self.storage.size(uri))

    def file_exists(self, path: str) -> bool:
        return bool(self.storage.exists(self.resolve(path)))

    def file_uri(self, path: str) -> str:
        return self.resolve(path)

    def error_logs(self) -> list[dict[str, Any]]:
        """The execution's ERROR log lines so far (empty when nobody gave a source)."""
        return list(self._error_logs()) if self._error_logs is not None else []


class LocalRunContext(RunContext):
    """A ``RunContext`` over real components, in this process.

    ``working_dir`` defaults to a fresh temporary folder that ``close()`` removes. Templates
    see ``variables`` plus ``workingDir``.
    """

    def __init__(self, *, execution_id: str, namespace: str, flow_id: str, task_id: str,
                 task_run_id: str, attempt: int, variables: dict[str, Any],
                 engine: TemplateEngine, storage: InternalStorage, kv: KVStore,
                 secrets: SecretStore, masker: Masker, logger: TaskLogger | None = None,
                 working_dir: Path | None = None,
                 error_logs: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.namespace = namespace
        self.flow_id = flow_id
        self.task_id = task_id
        self.task_run_id = task_run_id
        self.attempt = attempt
        self.engine = engine
        self.storage = storage
        self.kv = kv
        self.masker = masker
        self.logger = logger if logger is not None else TaskLogger(masker=masker)
        self._owns_working_dir = working_dir is None
        if working_dir is None:
            # Named now, made on first use: most tasks never touch it, and a folder costs
            # two metadata operations per task on slow filesystems.
            working_dir = Path(tempfile.gettempdir()) / f"kray-task-{uuid.uuid4().hex}"
            self._made = False
        else:
            working_dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        self._working_dir = working_dir
        self.variables = {**variables, "workingDir": str(working_dir)}
        self.services = Services(secrets=secrets, masker=masker, kv=kv, storage=storage,
                                 namespace=namespace, error_logs=error_logs)

    @property  # type: ignore[override]
    def working_dir(self) -> Path:
        if not self._made:
            self._working_dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        return self._working_dir

    def render(self, value: Any, extra: dict[str, Any] | None = None) -> Any:
        variables = {**self.variables, **extra} if extra else self.variables
        return self.engine.render_value(value, variables, self.services)

    def close(self) -> None:
        """Remove the working folder if this context made it."""
        if self._owns_working_dir and self._made:
            shutil.rmtree(self._working_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TaskOutcome:
    """How one attempt of a runnable task ended."""

    state: State  # SUCCESS, WARNING or FAILED
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # masked; set when FAILED


def execute_task(task: RunnableTask, ctx: LocalRunContext) -> TaskOutcome:
    """Run ``task`` in ``ctx`` and report how it ended; never raises for a task's failure.

    A ``KrayError`` (``TaskError``, ``TemplateError``...) fails the task with its message
    alone; any other exception with its type and message, its traceback going to the task's
    log at ERROR. Every message and output is masked. ``ctx.state_override`` (e.g. WARNING)
    replaces SUCCESS.
    """
    masker = ctx.masker
    try:
        outputs = task.run(ctx) or {}
    except KrayError as exc:
        message = masker.mask(str(exc) or type(exc).__name__)
        ctx.logger.error(message)
        return TaskOutcome(State.FAILED, error=message)
    except Exception as exc:  # noqa: BLE001 - a plugin bug fails its task, not the worker
        message = masker.mask(f"{type(exc).__name__}: {exc}")
        ctx.logger.error(masker.mask("".join(traceback.format_exception(exc)).rstrip()))
        return TaskOutcome(State.FAILED, error=message)
    if not isinstance(outputs, dict):
        message = f"{type(task).__name__}.run() returned {type(outputs).__name__}, not a dict"
        ctx.logger.error(message)
        return TaskOutcome(State.FAILED, error=message)
    state = ctx.state_override or State.SUCCESS
    error = f"task '{task.id}' set its own state to FAILED" if state == State.FAILED else None
    return TaskOutcome(State(state), masker.mask_value(outputs), error)
