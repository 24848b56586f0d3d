"""Helpers for the scripts that kray's script tasks run: send outputs, metrics and log lines.

A script task reads every stdout or stderr line of the form ``::{...}::`` as a message to kray
rather than a log line (Kestra's protocol)::

    ::{"outputs": {"rows": 42}, "metrics": [{"name": "rows", "type": "counter", "value": 42}]}::

``outputs`` merge into the task's ``vars`` output (``{{ outputs.<task>.vars.rows }}``),
``metrics`` become task metrics and ``logs`` (``[{"level": "WARN", "message": "..."}]``)
become log lines at their level. In Python::

    from kray.script import outputs, counter, log

    outputs({"rows": 42})
    counter("rows", 42, table="users")
    log("almost done", level="WARN")

``Kestra`` offers the same under the names of Kestra's own Python library
(``Kestra.outputs``, ``Kestra.counter``, ``Kestra.timer``, ``Kestra.logger``), so scripts
written for Kestra need only their import changed: ``from kray.script import Kestra``.

This module uses the standard library alone: a script task with ``dependencies`` runs in a
virtual environment where the rest of kray is not installed, and sees only this file.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

__all__ = ["Kestra", "counter", "gauge", "log", "metric", "outputs", "send", "timer"]


def send(message: Mapping[str, Any], stream: IO[str] | None = None) -> None:
    """Write one ``::{...}::`` line carrying ``message`` (flushed at once)."""
    out = stream if stream is not None else sys.stdout
    out.write("::" + json.dumps(dict(message), default=str, separators=(",", ":")) + "::\n")
    out.flush()


def outputs(values: Mapping[str, Any]) -> None:
    """Merge ``values`` into the task's ``vars`` output."""
    send({"outputs": dict(values)})


def metric(name: str, value: float, type: str = "counter", **tags: Any) -> None:
    """Record a metric of the task run; ``tags`` are stringified."""
    _metric(name, value, type, tags)


def _metric(name: str, value: float, type: str, tags: Mapping[str, Any] | None) -> None:
    send({"metrics": [{"name": name, "type": type, "value": value,
                       "tags": {str(k): str(v) for k, v in (tags or {}).items()}}]})


def counter(name: str, value: float, **tags: Any) -> None:
    """Record a counter metric."""
    metric(name, value, "counter", **tags)


def gauge(name: str, value: float, **tags: Any) -> None:
    """Record a gauge metric."""
    metric(name, value, "gauge", **tags)


def timer(name: str, seconds: float | Callable[[], Any], **tags: Any) -> None:
    """Record a duration in seconds; given a callable, call it and record how long it took."""
    _metric(name, _seconds(seconds), "timer", tags)


def _seconds(duration: float | Callable[[], Any]) -> float:
    if callable(duration):
        start = time.perf_counter()
        duration()
        return time.perf_counter() - start
    return float(duration)


def log(message: Any, level: str = "INFO") -> None:
    """Log ``message`` at ``level`` (TRACE, DEBUG, INFO, WARN, ERROR) in the task's log."""
    send({"logs": [{"level": level, "message": str(message)}]})


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = {"WARNING": "WARN", "CRITICAL": "ERROR"}.get(record.levelname,
                                                                 record.levelname)
            log(self.format(record), level)
        except Exception:  # noqa: BLE001 - logging must never break the script
            self.handleError(record)


class Kestra:
    """Kestra's Python helper API, on kray's protocol."""

    @staticmethod
    def outputs(values: Mapping[str, Any]) -> None:
        outputs(values)

    @staticmethod
    def counter(key: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        _metric(key, value, "counter", tags)

    @staticmethod
    def timer(key: str, duration: float | Callable[[], Any],
              tags: Mapping[str, Any] | None = None) -> None:
        _metric(key, _seconds(duration), "timer", tags)

    @staticmethod
    def logger(name: str = "kray.script") -> logging.Logger:
        """A ``logging.Logger`` whose records become task log lines at their level."""
        logger = logging.getLogger(name)
        if not any(isinstance(h, _Handler) for h in logger.handlers):
            logger.addHandler(_Handler())
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
        return logger
