"""Webhooks and triggers: the webhook route, trigger search, enable/disable and backfills.

The webhook route is the one route that needs no credentials: its key authenticates it (the
auth middleware lets exactly its shape through; the executor compares keys in constant
time). Its body is data, handed to the flow as ``trigger.body``, never compiled as a
template. The trigger routes follow Kestra's paths (``PUT /triggers`` with ``disabled`` or
``backfill``, ``/triggers/set-disabled/by-triggers``, ``/triggers/backfill/...``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from kray.api.deps import COMMON, Client, FlowId, Namespace, public, responses
from kray.api.models import Execution
from kray.api.responses import JSON
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import Response

router = APIRouter(responses=COMMON)

MAX_WEBHOOK_BODY = 10 * 1024 * 1024
# Credentials meant for kray are not the flow's business, should a caller send them.
HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

WebhookKey = Annotated[str, Path(min_length=1, max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TriggerRef(_Body):
    namespace: str = Field(max_length=150)
    flow_id: str = Field(max_length=100)
    trigger_id: str = Field(max_length=100)


class Label(_Body):
    key: str
    value: str


class Backfill(_Body):
    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[Label] = Field(
        default_factory=dict, description="A map, or Kestra's list of {key, value}")
    paused: StrictBool = False

    def label_map(self) -> dict[str, str]:
        if isinstance(self.labels, list):
            return {label.key: label.value for label in self.labels}
        return self.labels


class TriggerUpdate(TriggerRef):
    disabled: StrictBool | None = None
    backfill: Backfill | None = None


class SetDisabled(_Body):
    triggers: list[TriggerRef] = Field(max_length=1000)
    disabled: StrictBool = True


class TriggerContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str
    flowId: str
    triggerId: str
    type: str
    disabled: bool
    date: str | None = Field(None, description="A schedule's watermark: every tick up to "
                                               "it was handled")
    nextExecutionDate: str | None = None
    executionId: str | None = Field(None, description="The last execution it started")
    lastError: str | None = None
    backfill: dict[str, Any] | None = None


class TriggerView(BaseModel):
    abstractTrigger: dict[str, Any] = Field(description="The trigger as the flow defines it")
    triggerContext: TriggerContext


class PagedTriggers(BaseModel):
    results: list[TriggerView]
    total: int


class Count(BaseModel):
    count: int


# -- webhook ---------------------------------------------------------------------------------

@router.api_route("/executions/webhook/{namespace}/{flowId}/{key}", methods=["GET", "POST", "PUT"],
                  tags=["Executions"], response_model=Execution,
                  responses={**responses(404, 413), 204: {
                      "description": "The trigger's conditions are not met: nothing started"}},
                  summary="Start a flow by its webhook trigger (the key authenticates)")
async def webhook(namespace: Namespace, flowId: FlowId, key: WebhookKey, request: Request,
                  client: Client) -> Response:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BODY:
            return JSON({"message": f"the body is larger than {MAX_WEBHOOK_BODY} bytes",
                         "issues": []}, status_code=413)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HIDDEN_HEADERS]
    answer = await client.call("webhook", namespace, flowId, key, request.method, bytes(body),
                               headers, request.query_params.multi_items())
    if answer["status"] == 204:
        return Response(status_code=204)
    return JSON(public(answer["execution"]))


# -- triggers --------------------------------------------------------------------------------

@router.get("/triggers/search", tags=["Triggers"], response_model=PagedTriggers,
            summary="Search triggers")
async def search_triggers(
        client: Client,
        namespace: Annotated[str | None, Query(max_length=150,
                                               description="Also matches its children")] = None,
        flowId: Annotated[str | None, Query(max_length=100)] = None,
        q: Annotated[str | None, Query(max_length=200, description="Part of the namespace, "
                                                                   "flow id or trigger id")] = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        size: Annotated[int, Query(ge=1, le=1000)] = 25) -> Response:
    return JSON(await client.call("triggers", namespace, flowId, q, page, size))


@router.put("/triggers", tags=["Triggers"], response_model=TriggerView,
            responses=responses(404, 409),
            summary="Update a trigger: enable or disable it, or start a backfill")
async def update_trigger(update: TriggerUpdate, client: Client) -> Response:
    ref = (update.namespace, update.flow_id, update.trigger_id)
    view = None
    if update.disabled is not None:
        view = await client.call("set_trigger_enabled", *ref, not update.disabled)
    if update.backfill is not None:
        bf = update.backfill
        view = await client.call("backfill", *ref, bf.start, bf.end, bf.inputs,
                                bf.label_map())
        if bf.paused:
            view = await client.call("set_backfill_paused", *ref, True)
    if view is None:
        view = await client.call("trigger", *ref)
    return JSON(view)


@router.post("/triggers/set-disabled/by-triggers", tags=["Triggers"], response_model=Count,
             responses=responses(404, 409), summary="Disable (or enable) these triggers")
async def set_disabled(body: SetDisabled, client: Client) -> Response:
    for ref in body.triggers:
        await client.call("set_trigger_enabled", ref.namespace, ref.flow_id, ref.trigger_id,
                          not body.disabled)
    return JSON({"count": len(body.triggers)})


@router.put("/triggers/backfill/pause", tags=["Triggers"], response_model=TriggerView,
            responses=responses(404, 409), summary="Pause a trigger's backfill")
async def pause_backfill(ref: TriggerRef, client: Client) -> Response:
    return JSON(await client.call("set_backfill_paused", ref.namespace, ref.flow_id,
                                  ref.trigger_id, True))


@router.put("/triggers/backfill/unpause", tags=["Triggers"], response_model=TriggerView,
            responses=responses(404, 409), summary="Resume a trigger's paused backfill")
async def unpause_backfill(ref: TriggerRef, client: Client) -> Response:
    return JSON(await client.call("set_backfill_paused", ref.namespace, ref.flow_id,
                                  ref.trigger_id, False))


@router.post("/triggers/backfill/delete", tags=["Triggers"], response_model=TriggerView,
             responses=responses(404, 409), summary="Stop and forget a trigger's backfill")
async def delete_backfill(ref: TriggerRef, client: Client) -> Response:
    return JSON(await client.call("delete_backfill", ref.namespace, ref.flow_id,
                                  ref.trigger_id))


# Last: it would otherwise take /triggers/backfill/pause for a namespace and a flow.
@router.get("/triggers/{namespace}/{flowId}", tags=["Triggers"], response_model=PagedTriggers,
            summary="The triggers of a flow")
async def flow_triggers(namespace: Namespace, flowId: FlowId, client: Client,
                        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                        size: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    found = await client.call("triggers", namespace, flowId, None, 1, 100_000)
    results = [r for r in found["results"] if r["triggerContext"]["namespace"] == namespace]
    start = (page - 1) * size
    return JSON({"results": results[start:start + size], "total": len(results)})


__all__ = ["router"]
