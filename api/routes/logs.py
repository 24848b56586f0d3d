"""Logs: search across executions, one execution's lines, download, follow (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from starlette.responses import PlainTextResponse, Response

from kray.api.deps import COMMON, Client, DateTime, ExecutionId, parse_datetime, responses
from kray.api.models import LogLine, PagedLogs
from kray.api.responses import JSON, SSE, sse_event
from kray.api.routes.executions import follow_updates

router = APIRouter(prefix="/logs", tags=["Logs"], responses=COMMON)

Level = Annotated[Literal["TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"] | None,
                  Query(description="The lowest level shown")]


@router.get("/search", response_model=PagedLogs, summary="Search log lines")
async def search_logs(
        client: Client,
        namespace: Annotated[str | None, Query(max_length=150)] = None,
        flowId: Annotated[str | None, Query(max_length=100)] = None,
        executionId: Annotated[str | None, Query(max_length=64)] = None,
        minLevel: Level = None,
        q: Annotated[str | None, Query(max_length=200, description="Text in the message")
                     ] = None,
        startDate: DateTime = None,
        endDate: DateTime = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        size: Annotated[int, Query(ge=1, le=1000)] = 50,
        sort: Annotated[Literal["asc", "desc"], Query(description="By time")] = "desc"
) -> Response:
    return JSON(await client.call(
        "search_logs", namespace=namespace, flow_id=flowId, execution_id=executionId,
        min_level=minLevel, q=q, start_after=parse_datetime(startDate, "startDate"),
        start_before=parse_datetime(endDate, "endDate"), page=page, size=size, sort=sort))


@router.get("/{executionId}", response_model=list[LogLine], responses=responses(404),
            summary="An execution's log lines, in order")
async def execution_logs(
        executionId: ExecutionId, client: Client, minLevel: Level = None,
        taskRunId: Annotated[str | None, Query(max_length=64)] = None,
        taskId: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    return JSON(await client.call("logs_of", executionId, min_level=minLevel,
                                  task_run_id=taskRunId, task_id=taskId))


@router.get("/{executionId}/download", response_class=PlainTextResponse,
            responses=responses(404), summary="An execution's logs as a text file")
async def download_logs(executionId: ExecutionId, client: Client,
                        minLevel: Level = None) -> Response:
    lines = await client.call("logs_of", executionId, min_level=minLevel)
    text = "".join(f"{ln.get('timestamp') or ''} {ln.get('level', 'INFO'):5} "
                   f"[{ln.get('taskId') or ''}] {ln.get('message') or ''}\n" for ln in lines)
    return PlainTextResponse(text, headers={
        "Content-Disposition": f'attachment; filename="{executionId}.log"'})


@router.get("/{executionId}/follow", response_class=SSE, status_code=200, responses={
    **responses(404), 200: {
    "description": "Server-Sent Events: one `log` event per line until the execution ends. "
                   "A line's event id is its number in the execution's logs (from 1): a "
                   "client that reconnects with `Last-Event-ID: n` (or `?lastEventId=n`) gets "
                   "the lines after the n-th. An id that is not a line number already sent "
                   "starts the stream from the first line.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    summary="Follow an execution's logs (Server-Sent Events)")
async def follow_logs(
        executionId: ExecutionId, client: Client,
        last_event_id: Annotated[str | None, Header(
            alias="Last-Event-ID",
            description="Resume after this line (EventSource sends it on reconnect)")] = None,
        lastEventId: Annotated[str | None, Query(
            description="The same as the Last-Event-ID header, for a client "
            "that cannot set headers (a new EventSource); the header wins")] = None
) -> Response:
    start = line_number(last_event_id if last_event_id is not None else lastEventId)
    first = await client.call("follow", executionId, -1, start, 0.0)
    if start > first["logCursor"]:  # more lines than the execution has: not ours to resume
        start = 0
        first = await client.call("follow", executionId, -1, 0, 0.0)
    return SSE(_log_events(client, executionId, first, start))


def line_number(event_id: str | None) -> int:
    """How many lines the client already has, from the id of the last event it got. An id
    that is no line number is 0: the client gets every line again rather than an error (which
    an EventSource takes as the end of the stream); so does a number beyond the lines the
    execution has (checked by the caller), rather than a silent gap."""
    text = (event_id or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0


async def _log_events(client: Any, execution_id: str, first: dict,
                      start: int = 0) -> AsyncIterator[bytes]:
    count = start
    async for update in follow_updates(client, execution_id, first):
        for line in update["logs"]:
            count += 1
            yield sse_event("log", line, count)
        if update["keepalive"]:
            yield b": keepalive\n\n"
        if update["done"]:
            yield sse_event("end", {"state": update["state"]})
