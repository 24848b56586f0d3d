"""The one error hierarchy. Every error kray raises on purpose is a ``KrayError``.

Subclasses are named for their audience: a flow author sees ``FlowValidationError`` and
``TemplateError``; a plugin author ``PluginNotFound``; the engine's own bugs surface as
``IllegalTransition``.
"""

from __future__ import annotations

from dataclasses import dataclass


class KrayError(Exception):
    """Root of every error kray raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a flow, located as precisely as we can."""

    message: str
    path: str = ""  # dotted field path, e.g. "tasks[1].message"
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = self.file or "<flow>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f" [{self.path}]" if self.path else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "path": self.path, "file": self.file,
                "line": self.line, "column": self.column}


class FlowValidationError(KrayError):
    """A flow (or its inputs) is invalid. Carries every issue found, not just the first."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid flow")


class InputValidationError(FlowValidationError):
    """An execution's inputs break the flow's input declarations."""


class PluginNotFound(KrayError):
    """No task or trigger type is registered under this name."""

    def __init__(self, type_name: str, suggestions: list[str] | None = None):
        self.type_name = type_name
        self.suggestions = suggestions or []
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown type '{type_name}'{hint}")


class DuplicatePlugin(KrayError):
    """Two plugins tried to register the same type name."""


class IllegalTransition(KrayError):
    """A state change that the transition table forbids: always a bug, never ignored."""


class TemplateError(KrayError):
    """A template failed to parse or render (undefined variable, bad filter, too large)."""


class StoragePathError(KrayError):
    """A storage path that would escape its root or is otherwise malformed."""


class TaskError(KrayError):
    """Raised by a runnable task to fail its task run with a clean message (no traceback)."""


class ExecutionNotFound(KrayError):
    """No execution with this id."""


class FlowNotFound(KrayError):
    """No deployed flow with this namespace and id (and revision)."""
