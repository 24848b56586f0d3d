"""Flows: create and update from YAML, revisions, search, validate, namespace sync, delete.

Literal paths (``/flows/search``, ``/flows/validate``) come before the ones they would
otherwise match as a namespace.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from kray.api.deps import (COMMON, YAML_BODY, YAML_DOCUMENTS, Client, FlowId, Namespace,
                           responses, yaml_body)
from kray.api.models import Flow, FlowValidation, NamespaceSync, PagedFlows
from kray.api.responses import JSON

router = APIRouter(prefix="/flows", tags=["Flows"], responses=COMMON)


@router.post("", response_model=Flow, openapi_extra=YAML_BODY, responses=responses(409),
             summary="Create a flow from its YAML source")
async def create_flow(request: Request, client: Client) -> Response:
    source = await yaml_body(request)
    return JSON(await client.call("save_flow", source, create=True))


@router.get("/search", response_model=PagedFlows, summary="Search flows")
async def search_flows(
        client: Client,
        namespace: Annotated[str | None, Query(max_length=150)] = None,
        q: Annotated[str | None, Query(max_length=200,
                                       description="Part of the id or namespace")] = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        size: Annotated[int, Query(ge=1, le=1000)] = 25) -> Response:
    return JSON(await client.call("search_flows", namespace, q, page, size))


@router.post("/validate", response_model=list[FlowValidation], openapi_extra=YAML_DOCUMENTS,
             summary="Validate flows (one or more YAML documents) without saving them")
async def validate_flows(request: Request, client: Client) -> Response:
    return JSON(await client.call("validate_flows", await yaml_body(request)))


@router.get("/{namespace}", response_model=list[Flow],
            summary="The flows of a namespace (and its children)")
async def namespace_flows(namespace: Namespace, client: Client) -> Response:
    page = await client.call("search_flows", namespace, None, 1, 100_000)
    return JSON(page["results"])


@router.post("/{namespace}", response_model=NamespaceSync, openapi_extra=YAML_DOCUMENTS,
             summary="Make a namespace hold exactly these flows (YAML documents)")
async def sync_namespace(
        namespace: Namespace, request: Request, client: Client,
        delete: Annotated[bool, Query(description="Delete the namespace's flows that the "
                                                  "body does not hold")] = True) -> Response:
    source = await yaml_body(request)
    return JSON(await client.call("sync_namespace", namespace, source, delete))


@router.get("/{namespace}/{id}", response_model=Flow, responses=responses(404),
            summary="A flow: its latest revision, or the one asked for")
async def get_flow(namespace: Namespace, id: FlowId, client: Client,
                   revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
                   ) -> Response:
    return JSON(await client.call("get_flow", namespace, id, revision))


@router.put("/{namespace}/{id}", response_model=Flow, openapi_extra=YAML_BODY,
            responses=responses(404), summary="Update a flow: a changed source is a new "
                                              "revision")
async def update_flow(namespace: Namespace, id: FlowId, request: Request,
                      client: Client) -> Response:
    source = await yaml_body(request)
    return JSON(await client.call("save_flow", source, namespace=namespace, flow_id=id))


@router.delete("/{namespace}/{id}", status_code=204, response_class=Response,
               responses=responses(404), summary="Delete a flow (its revisions are kept)")
async def delete_flow(namespace: Namespace, id: FlowId, client: Client) -> Response:
    await client.call("delete_flow", namespace, id)
    return Response(status_code=204)


@router.get("/{namespace}/{id}/revisions", response_model=list[Flow],
            responses=responses(404), summary="Every revision of a flow, oldest first")
async def flow_revisions(namespace: Namespace, id: FlowId, client: Client) -> Response:
    return JSON(await client.call("flow_revisions", namespace, id))
