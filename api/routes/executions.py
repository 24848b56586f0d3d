"""Executions: create (inputs, files, labels, ``wait``), get, search, kill, restart, replay,
resume, change status, follow (SSE) and file download.

The routes on ``/executions/{executionId}/<action>`` come before
``POST /executions/{namespace}/{id}``, which would otherwise take ``restart`` for a flow id
(Kestra resolves the same ambiguity the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from kray.api.deps import (COMMON, Client, DateTime, ExecutionId, FlowId, Namespace,
                           inputs_body, parse_datetime, parse_labels, public, read_inputs,
                           responses)
from kray.api.models import Execution, PagedExecutions
from kray.api.responses import JSON, SSE, sse_event
from kray.engine.state import State

router = APIRouter(prefix="/executions", tags=["Executions"], responses=COMMON)

WAIT_SLICE = 30.0  # seconds one executor call waits before the API asks again
KEEPALIVE = 15.0  # seconds without news before an SSE comment keeps the connection open
SMALL_DOCUMENT = 128 * 1024  # bytes: an execution event this small is sent on every change
DOCUMENT_RATE = 1024 * 1024  # bytes a second of a big execution's events, per follower
MAX_GAP = 2.0  # seconds: the longest a follower of a big execution goes without its news

Labels = Annotated[list[str] | None, Query(description="key:value, repeatable",
                                           max_length=100)]


@router.get("/search", response_model=PagedExecutions, summary="Search executions")
async def search_executions(
        client: Client,
        namespace: Annotated[str | None, Query(max_length=150)] = None,
        flowId: Annotated[str | None, Query(max_length=100)] = None,
        state: Annotated[list[State] | None, Query(max_length=20)] = None,
        labels: Labels = None,
        startDate: DateTime = None,
        endDate: DateTime = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        size: Annotated[int, Query(ge=1, le=1000)] = 25,
        sort: Annotated[str, Query(max_length=40, description="field:asc|desc; field one of "
                                   "startDate, endDate, state, namespace, flowId, id")
                        ] = "startDate:desc",
        taskRuns: Annotated[bool, Query(description="false: each execution without its task "
                                        "runs, with taskRunCount and taskRunStates instead")
                            ] = True) -> Response:
    found = await client.call(
        "search_executions", namespace=namespace, flow_id=flowId,
        states=[s.value for s in state] if state else None, labels=parse_labels(labels),
        start_after=parse_datetime(startDate, "startDate"),
        start_before=parse_datetime(endDate, "endDate"), page=page, size=size, sort=sort,
        task_runs=taskRuns)
    return JSON({"results": [public(d) for d in found["results"]], "total": found["total"]})


@router.get("/{executionId}", response_model=Execution, responses=responses(404),
            summary="An execution")
async def get_execution(executionId: ExecutionId, client: Client) -> Response:
    return JSON(public(await client.call("get_execution", executionId)))


@router.delete("/{executionId}/kill", status_code=202, response_model=Execution,
               responses=responses(404, 409),
               summary="Kill a running execution (and the subflows it waits for)")
async def kill_execution(executionId: ExecutionId, client: Client) -> Response:
    return JSON(public(await client.call("kill_execution", executionId)), status_code=202)


@router.post("/{executionId}/restart", response_model=Execution,
             responses=responses(404, 409),
             summary="Restart a FAILED, KILLED or WARNING execution: same id, failed task "
                     "runs get a new attempt")
async def restart_execution(executionId: ExecutionId, client: Client) -> Response:
    return JSON(public(await client.call("restart_execution", executionId)))


@router.post("/{executionId}/replay", response_model=Execution,
             responses=responses(404, 409),
             summary="Replay an ended execution as a new one (parentId), optionally from a "
                     "task run")
async def replay_execution(
        executionId: ExecutionId, client: Client,
        taskRunId: Annotated[str | None, Query(max_length=64)] = None,
        revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    return JSON(public(await client.call("replay_execution", executionId, taskRunId,
                                         revision)))


@router.post("/{executionId}/resume", response_model=Execution,
             responses=responses(404, 409),
             openapi_extra=inputs_body("The paused task's onResume inputs"),
             summary="Resume a PAUSED execution")
async def resume_execution(executionId: ExecutionId, request: Request,
                           client: Client) -> Response:
    inputs, files = await read_inputs(request)
    return JSON(public(await client.call("resume_execution", executionId, inputs, files)))


@router.post("/{executionId}/change-status", response_model=Execution,
             responses=responses(404, 409),
             summary="Move an ended execution to another terminal state")
async def change_status(executionId: ExecutionId, status: Annotated[State, Query()],
                        client: Client) -> Response:
    return JSON(public(await client.call("change_status", executionId, status.value)))


@router.get("/{executionId}/follow", responses={**responses(404), 200: {
    "description": "Server-Sent Events: `execution` events (each the whole execution "
                   "document) until the execution ends, then `end`. A big execution's events "
                   f"are paced: after an event of n bytes above {SMALL_DOCUMENT // 1024} KiB "
                   f"the next comes n / {DOCUMENT_RATE // 1024} KiB seconds later at the "
                   f"earliest (at most {MAX_GAP:g} s), carrying the newest document; the one "
                   "that ends the execution comes at once.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    response_class=SSE, status_code=200, summary="Follow an execution (Server-Sent Events)")
async def follow_execution(executionId: ExecutionId, client: Client) -> Response:
    first = await client.call("follow", executionId, -1, 0, 0.0)
    return SSE(_execution_events(client, executionId, first))


def event_gap(size: int) -> float:
    """Seconds between an execution event of ``size`` bytes and the next one.

    Every change of an execution re-sends its whole document: for a ForEach of 2,000 task
    runs that is 1.6 MB up to ~8 times a second, per follower, which saturates a slow link
    and the browser's JSON parser while telling a person nothing they can read that fast.
    Small documents go out on every change (a live Gantt stays live); a big one waits as
    long as sending it costs at ``DOCUMENT_RATE``, so a follower receives about that many
    bytes a second whatever the execution's pace. Changes during the wait are not lost: the
    next event carries the newest document."""
    if size <= SMALL_DOCUMENT:
        return 0.0
    return min(MAX_GAP, size / DOCUMENT_RATE)


async def _execution_events(client: Any, execution_id: str,
                            first: dict) -> AsyncIterator[bytes]:
    last_size = 0

    def gap() -> float:
        nonlocal last_size
        size, last_size = last_size, 0
        return event_gap(size)

    async for update in follow_updates(client, execution_id, first, gap):
        if update["execution"] is not None:
            event = sse_event("execution", public(update["execution"]), update["version"])
            last_size = len(event)
            yield event
        elif update.get("keepalive"):
            yield b": keepalive\n\n"
        if update["done"]:
            yield sse_event("end", {"state": update["state"]})


async def follow_updates(client: Any, execution_id: str, update: dict,
                         gap: Callable[[], float] | None = None) -> AsyncIterator[dict]:
    """The executor's long-poll ``follow`` as a stream of updates, ending with the one that
    says the execution is terminal. A client that goes away cancels the stream (Starlette
    watches for the disconnect).

    ``gap``, asked after each update, paces the stream: for that many seconds it waits for
    the execution's end alone (which ends the wait at once), then takes the newest state."""
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    state = None
    while True:
        if update["execution"] is not None:
            state = update["execution"]["state"]
        news = update["execution"] is not None or update["logs"]
        update = {**update, "state": state,
                  "keepalive": not news and loop.time() - quiet_since > KEEPALIVE}
        if news or update["keepalive"]:
            quiet_since = loop.time()
        yield update
        if update["done"]:
            return
        pause = gap() if gap is not None else 0.0
        if pause > 0:
            await client.call("wait_execution", execution_id, pause, False)
        update = await client.call("follow", execution_id, update["version"],
                                   update["logCursor"], 1.0)


@router.get("/{executionId}/file", response_class=Response, responses={
    **responses(404), 200: {"description": "The file's content",
                            "content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}}}},
    summary="Download a file of the execution (inputs, task outputs)")
async def execution_file(executionId: ExecutionId, client: Client,
                         path: Annotated[str, Query(min_length=1, max_length=1100,
                                                    description="kray:///... URI")]
                         ) -> Response:
    name, data = await client.call("execution_file", executionId, path)
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=\"{_quoted(name)}\""})


def _quoted(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@router.post("/{namespace}/{id}", response_model=Execution,
             responses=responses(404, 409),
             openapi_extra=inputs_body("The flow's inputs; a FILE input as a file part"),
             summary="Create an execution of a flow")
async def create_execution(
        namespace: Namespace, id: FlowId, request: Request, client: Client,
        wait: Annotated[bool, Query(description="Answer once the execution has ended, with "
                                                "only the flow's declared outputs")] = False,
        labels: Labels = None,
        revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    inputs, files = await read_inputs(request)
    options = {"files": files, "labels": parse_labels(labels), "revision": revision}
    if not wait:
        return JSON(public(await client.call("start_execution", namespace, id, inputs,
                                             **options)))
    result = await client.call("run_execution", namespace, id, inputs, wait=WAIT_SLICE,
                               **options)
    while not result["done"] and not await request.is_disconnected():
        result = await client.call("wait_execution", result["execution"]["id"], WAIT_SLICE)
    return JSON(public(result["execution"], task_outputs=False))
