"""What the web UI needs beyond the core API: a flow's topology (saved, or unsaved editor
text), the plugins' JSON Schemas for editor completion, a table preview of an execution's
stored file, and the list of namespaces.

Included before the flow and execution routers: ``POST /flows/graph`` would otherwise be taken
for a namespace sync of namespace ``graph``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from kray.api.deps import (COMMON, YAML_BODY, Client, ExecutionId, FlowId, Namespace,
                           responses, yaml_body)
from kray.api.preview import MAX_ROWS, preview
from kray.api.responses import JSON

router = APIRouter(tags=["UI"], responses=COMMON)

GRAPH_CACHE = 256  # topologies kept, by source text

_graphs: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

GRAPH_RESPONSE = {200: {"description": "The flow's topology: nodes (uid = task id, the "
                        "taskId of its task runs) and edges", "content": {
                            "application/json": {"schema": {"type": "object", "properties": {
                                "nodes": {"type": "array", "items": {"type": "object"}},
                                "edges": {"type": "array", "items": {"type": "object"}}}}}}}}


def _graph_of(source: str) -> dict[str, Any]:
    """Parse and lay out (blocking; parsing a big flow takes milliseconds). A parse error is
    a ``FlowValidationError``: a 422 naming each issue's line and column."""
    from kray.flow.parse import parse_flow
    from kray.graph import flow_graph

    key = hashlib.sha256(source.encode()).digest()
    found = _graphs.get(key)
    if found is not None:
        _graphs.move_to_end(key)
        return found
    graph = flow_graph(parse_flow(source))
    _graphs[key] = graph
    while len(_graphs) > GRAPH_CACHE:
        _graphs.popitem(last=False)
    return graph


@router.post("/flows/graph", responses={**GRAPH_RESPONSE, **responses(422)},
             openapi_extra=YAML_BODY,
             summary="The topology of a flow's YAML (unsaved editor text); 422 with located "
                     "issues when it is not a valid flow")
async def graph_of_source(request: Request) -> Response:
    return JSON(await asyncio.to_thread(_graph_of, await yaml_body(request)))


@router.get("/flows/{namespace}/{id}/graph", responses={**GRAPH_RESPONSE, **responses(404)},
            summary="The topology of a saved flow (its latest revision, or the one asked for)")
async def saved_flow_graph(namespace: Namespace, id: FlowId, client: Client,
                           revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
                           ) -> Response:
    flow = await client.call("get_flow", namespace, id, revision)
    return JSON(await asyncio.to_thread(_graph_of, flow["source"]))


@functools.cache
def plugin_schemas() -> dict[str, Any]:
    """Every flow, task and trigger schema, built once per process (the plugins a process
    loads do not change while it runs)."""
    from kray.api.schemas import all_ui_schemas
    return all_ui_schemas()


@router.get("/plugins/schemas", summary="JSON Schemas of a flow, of every task type and of "
            "every trigger type (for editor completion)", responses={200: {
                "description": "{flow, tasks: {type: schema}, triggers: {type: schema}, "
                               "aliases: {alias: type}}",
                "content": {"application/json": {"schema": {"type": "object"}}}}})
async def schemas() -> Response:
    return JSON(await asyncio.to_thread(plugin_schemas),
                headers={"Cache-Control": "private, max-age=300"})


@router.get("/executions/{executionId}/file/preview", responses={
    **responses(404), 200: {"description": "{format, columns, rows, truncated, text, size}",
                            "content": {"application/json": {"schema": {"type": "object"}}}}},
    summary="A preview of a file of the execution: CSV, Parquet, JSON and NDJSON as a "
            "table (read by DuckDB), text as its first bytes")
async def file_preview(
        executionId: ExecutionId, client: Client,
        path: Annotated[str, Query(min_length=1, max_length=1100,
                                   description="kray:///... URI")],
        maxRows: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100) -> Response:
    # The executor checks that the file belongs to the execution, as for a download.
    name, data = await client.call("execution_file", executionId, path)
    return JSON(await asyncio.to_thread(preview, name, data, maxRows))


@router.get("/namespaces", summary="Namespaces that hold flows, KV entries or files",
            responses={200: {"description": "[{id, flows}] by id", "content": {
                "application/json": {"schema": {"type": "array", "items": {
                    "type": "object", "properties": {"id": {"type": "string"},
                                                     "flows": {"type": "integer"}}}}}}}})
async def namespaces(client: Client) -> Response:
    return JSON(await client.call("namespace_ids"))


__all__ = ["router", "plugin_schemas"]
