"""``/health`` (no auth) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from kray.api.deps import Client, responses
from kray.api.models import Health
from kray.api.responses import JSON

router = APIRouter(tags=["System"])

HEALTH_TIMEOUT = 2.0  # seconds the executor may take to answer a health check
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/health", response_model=Health, responses={503: {
    "model": Health, "description": "The executor does not answer"}},
    summary="Liveness: the API answers and the executor too (no credentials needed)")
async def health(request: Request) -> Response:
    client = request.app.state.client
    try:
        await asyncio.wait_for(client.call("ping"), HEALTH_TIMEOUT)
    except Exception:  # any failure to reach the executor is "down", never a 500
        return JSON({"status": "DOWN"}, status_code=503)
    return JSON({"status": "UP"})


@router.get("/metrics", response_class=Response, responses={
    **responses(401, 503),
    200: {"description": "Prometheus text exposition format",
          "content": {PROMETHEUS: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics: executions by state, task durations, queue depth")
async def metrics(client: Client) -> Response:
    return Response(render(await client.call("metrics_snapshot")), media_type=PROMETHEUS)


def render(m: dict[str, Any]) -> str:
    """The executor's snapshot in Prometheus' text format."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(name: str, value: float, **labels: str) -> None:
        label = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{label}}} {_number(value)}" if label
                   else f"{name} {_number(value)}")

    family("kray_executions", "gauge", "Stored executions by current state.")
    for state, count in sorted(m["executionsByState"].items()):
        sample("kray_executions", count, state=state)
    family("kray_executions_ended_total", "counter",
           "Executions that reached a terminal state since the executor started.")
    for state, count in sorted(m["ended"].items()):
        sample("kray_executions_ended_total", count, state=state)
    family("kray_executions_live", "gauge", "Executions the executor is running now.")
    sample("kray_executions_live", m["live"])
    family("kray_executions_queued", "gauge",
           "Executions waiting for a flow concurrency slot (queue depth).")
    sample("kray_executions_queued", m["queued"])
    family("kray_task_runs_inflight", "gauge", "Task attempts submitted to Ray, not answered.")
    sample("kray_task_runs_inflight", m["inflightTasks"])
    family("kray_commit_pending", "gauge", "Changes waiting for the next group commit.")
    sample("kray_commit_pending", m["pendingCommit"])
    family("kray_commit_seconds", "gauge", "How long the last group commit took.")
    sample("kray_commit_seconds", m["lastCommitSeconds"])
    family("kray_task_runs_total", "counter",
           "Task runs (on workers) that ended since the executor started, by state.")
    for state, count in sorted(m["taskRuns"].items()):
        sample("kray_task_runs_total", count, state=state)
    duration = m["taskDuration"]
    family("kray_task_run_duration_seconds", "histogram",
           "Task run durations (first attempt start to end), since the executor started.")
    for bound, count in duration["buckets"]:
        sample("kray_task_run_duration_seconds_bucket", count, le=_number(bound))
    sample("kray_task_run_duration_seconds_bucket", duration["count"], le="+Inf")
    sample("kray_task_run_duration_seconds_sum", duration["sum"])
    sample("kray_task_run_duration_seconds_count", duration["count"])
    return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)
