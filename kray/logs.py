"""The log collector a runnable task writes to: ``ctx.logger``.

Every line is masked (secrets read during the run never reach a log) before it is buffered,
handed to ``on_line`` or passed on to Python's ``logging`` (logger ``kray.task``). The worker
drains the buffer periodically and ships the lines to the executor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")

_ALIASES = {"WARNING": "WARN", "FATAL": "ERROR", "CRITICAL": "ERROR"}
_RANK = {name: i for i, name in enumerate(LEVELS)}
TRACE_LEVEL = 5  # Python logging has no TRACE; below DEBUG (10)
_PY_LEVELS = {"TRACE": TRACE_LEVEL, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
              "WARN": logging.WARNING, "ERROR": logging.ERROR}

_py_logger = logging.getLogger("kray.task")


class Masker(Protocol):
    def mask(self, text: str) -> str: ...


def normalize_level(level: str) -> str:
    """``"warning"`` -> ``"WARN"``; raises ``ValueError`` on an unknown level."""
    name = str(level).upper()
    name = _ALIASES.get(name, name)
    if name not in _RANK:
        raise ValueError(f"unknown log level '{level}' (expected one of {', '.join(LEVELS)})")
    return name


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TaskLogger:
    """Collects one task run's log lines.

    Each line is ``{"timestamp": ISO-8601, "level": "INFO", "message": masked text}``. Lines
    below ``min_level`` (the task's ``logLevel``) are dropped. Thread-safe: script tasks log
    from reader threads.
    """

    def __init__(self, *, masker: Masker, min_level: str = "INFO",
                 on_line: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.masker = masker
        self.min_level = normalize_level(min_level)
        self.on_line = on_line
        self.clock = clock or _utcnow
        self.lines: list[dict[str, Any]] = []  # buffered since the last ``drain()``
        self._lock = threading.Lock()

    def enabled(self, level: str) -> bool:
        return _RANK[normalize_level(level)] >= _RANK[self.min_level]

    def log(self, level: str, msg: Any) -> None:
        """Record ``msg`` at ``level`` (one of ``LEVELS``; ``WARNING`` is accepted)."""
        name = normalize_level(level)
        if _RANK[name] < _RANK[self.min_level]:
            return
        text = self.masker.mask(msg if isinstance(msg, str) else str(msg))
        line = {"timestamp": self.clock().isoformat(), "level": name, "message": text}
        with self._lock:
            self.lines.append(line)
        _py_logger.log(_PY_LEVELS[name], text)
        if self.on_line is not None:
            self.on_line(line)

    def trace(self, msg: Any) -> None:
        self.log("TRACE", msg)

    def debug(self, msg: Any) -> None:
        self.log("DEBUG", msg)

    def info(self, msg: Any) -> None:
        self.log("INFO", msg)

    def warn(self, msg: Any) -> None:
        self.log("WARN", msg)

    def warning(self, msg: Any) -> None:
        self.log("WARN", msg)

    def error(self, msg: Any) -> None:
        self.log("ERROR", msg)

    def drain(self) -> list[dict[str, Any]]:
        """Return the lines buffered since the last drain and forget them (periodic flush)."""
        with self._lock:
            out, self.lines = self.lines, []
        return out


def emit(logger: Any, level: str, msg: str) -> None:
    """Log through any ``kray.context.TaskLogger``, even one without ``trace``/``log``."""
    name = normalize_level(level)
    if isinstance(logger, TaskLogger):
        logger.log(name, msg)
        return
    method = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning",
              "ERROR": "error"}[name]
    if name == "TRACE" and hasattr(logger, "trace"):
        method = "trace"
    getattr(logger, method)(msg)
