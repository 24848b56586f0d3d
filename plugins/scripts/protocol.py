"""What a script's output lines mean: log lines, or ``::{...}::`` messages to kray.

A line (stdout or stderr) matching ``^::(\\{.*\\})::$`` whose JSON is an object is a message:
``{"outputs": {...}, "metrics": [...], "logs": [...]}``, every key optional. ``outputs``
merge (shallowly, later lines win) into the task's ``vars`` output; each metric
``{"name", "value", "type" (counter), "tags" {}}`` goes to ``ctx.metric``; each log
``{"level", "message"}`` becomes a log line at that level. Any other line is logged: stdout at
INFO, stderr at ERROR; blank lines are dropped. ``kray.script`` writes these messages.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from kray.logs import emit, normalize_level

if TYPE_CHECKING:
    from kray.context import RunContext

MESSAGE = re.compile(r"^::(\{.*\})::$")


class ScriptOutput:
    """The line handler of one script run (``process.run``'s ``on_line``): logs each line
    and gathers what the script sent."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.stderr_lines = 0  # non-message, non-blank stderr lines
        self.last_stderr: str | None = None

    def __call__(self, stream: str, line: str) -> None:
        match = MESSAGE.match(line)
        if match is not None:
            try:
                message = json.loads(match.group(1))
            except ValueError:
                message = None
            if isinstance(message, dict):
                self.apply(message)
                return
        if not line.strip():
            return
        if stream == "stderr":
            self.stderr_lines += 1
            self.last_stderr = line
            self.ctx.logger.error(line)
        else:
            self.ctx.logger.info(line)

    def apply(self, message: dict[str, Any]) -> None:
        """Carry out one message from the script."""
        outputs = message.get("outputs")
        if isinstance(outputs, dict):
            self.vars.update(outputs)
        elif outputs is not None:
            self.ctx.logger.warning(f"ignored 'outputs' that is not an object: {outputs!r}")
        for metric in _items(message.get("metrics")):
            self._metric(metric)
        for log in _items(message.get("logs")):
            self._log(log)

    def _metric(self, metric: Any) -> None:
        value = metric.get("value") if isinstance(metric, dict) else None
        name = metric.get("name") if isinstance(metric, dict) else None
        if (not isinstance(name, str) or not name or isinstance(value, bool)
                or not isinstance(value, (int, float)) or not math.isfinite(value)):
            self.ctx.logger.warning(f"ignored a malformed metric: {metric!r}")
            return
        tags = metric.get("tags") or {}
        tags = {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
        kind = str(metric.get("type") or "counter")
        if tags.keys() & {"name", "value", "type"}:  # would clash with metric()'s parameters
            self.ctx.metrics.append({"name": name, "value": value, "type": kind, "tags": tags})
        else:
            self.ctx.metric(name, value, kind, **tags)

    def _log(self, log: Any) -> None:
        if not isinstance(log, dict) or "message" not in log:
            self.ctx.logger.warning(f"ignored a malformed log entry: {log!r}")
            return
        try:
            level = normalize_level(str(log.get("level") or "INFO"))
        except ValueError:
            level = "INFO"
        emit(self.ctx.logger, level, str(log["message"]))


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
