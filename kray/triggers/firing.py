"""What a triggered execution is created with: its trigger key, its ``trigger.*`` variables
and its inputs. Pure.

Trigger keys go in the repository's unique ``trigger_key`` column; the same key is never
given to two executions, which is what makes a tick (or an upstream execution's end) start
exactly one execution, across executor restarts and overlapping backfills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from kray.engine.state import State

Evaluate = Callable[[str, Mapping[str, Any]], Any]


def tick_key(namespace: str, flow_id: str, trigger_id: str, tick: datetime) -> str:
    """``<ns>/<flow>/<trigger>/<tick, ISO-8601 in UTC>``: a schedule's and a backfill's."""
    return f"{namespace}/{flow_id}/{trigger_id}/{tick.astimezone(UTC).isoformat()}"


def ended_key(namespace: str, flow_id: str, trigger_id: str, ended: Mapping[str, Any]) -> str:
    """A Flow trigger's key: the upstream execution and how many times it was restarted, so
    replaying its end after an executor restart fires nothing, a user's restart fires again."""
    return f"{namespace}/{flow_id}/{trigger_id}/execution/{ended['id']}/{ended['restarts']}"


def ended_view(execution: Any) -> dict[str, Any]:
    """What Flow triggers and their conditions see of an execution that ended."""
    history = execution.state.history
    return {"id": execution.id, "namespace": execution.namespace, "flowId": execution.flow_id,
            "flowRevision": execution.flow_revision, "state": execution.state.current.value,
            "labels": dict(execution.labels), "outputs": dict(execution.outputs),
            "restarts": sum(1 for s, _ in history if s == State.RESTARTED)}


def flow_variables(ended: Mapping[str, Any]) -> dict[str, Any]:
    """``trigger.*`` of an execution started by a Flow trigger."""
    return {"executionId": ended["id"], "namespace": ended["namespace"],
            "flowId": ended["flowId"], "flowRevision": ended.get("flowRevision"),
            "state": ended["state"], "executionLabels": ended.get("labels") or {},
            "outputs": ended.get("outputs") or {}}


def parse_body(body: bytes) -> Any:
    """A webhook body: its JSON value when it parses, else its text; None when empty. Data,
    never compiled as a template."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


def multi(pairs: Iterable[tuple[str, str]], *, lower: bool = False) -> dict[str, list[str]]:
    """Repeated names as lists, as Kestra gives ``trigger.headers`` and ``trigger.parameters``."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.lower() if lower else name, []).append(value)
    return out


def webhook_variables(body: bytes, headers: Iterable[tuple[str, str]],
                      parameters: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``trigger.body``, ``trigger.headers`` (lower-case names) and ``trigger.parameters``."""
    return {"body": parse_body(body), "headers": multi(headers, lower=True),
            "parameters": multi(parameters)}


def render_inputs(evaluate: Evaluate, inputs: Mapping[str, Any],
                  variables: Mapping[str, Any]) -> dict[str, Any]:
    """A trigger's ``inputs`` rendered with the trigger's variables: a value that is exactly
    one ``{{ expression }}`` keeps its type (a list stays a list). The templates come from
    the flow's source; the variables (webhook bodies, upstream outputs) are only data."""
    def render(value: Any) -> Any:
        if isinstance(value, str):
            return evaluate(value, variables)
        if isinstance(value, Mapping):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        return value
    return {k: render(v) for k, v in inputs.items()}
