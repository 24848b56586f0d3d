"""What the route families share: the executor client, path patterns, request bodies (YAML,
inputs as multipart, form or JSON), labels, and the public view of an execution."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Query
from starlette.datastructures import UploadFile
from starlette.requests import Request

from kray.api.client import ExecutorClient
from kray.api.models import Error
from kray.executor_store import RequestError

NAMESPACE = r"^[a-z0-9][a-z0-9._-]*$"
FLOW_ID = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
EXECUTION_ID = r"^[A-Za-z0-9_-]+$"
KV_KEY = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
MAX_YAML = 4 * 1024 * 1024
MAX_FIELDS = 1000


def _client(request: Request) -> ExecutorClient:
    return request.app.state.client  # type: ignore[no-any-return]


Client = Annotated[ExecutorClient, Depends(_client)]
Namespace = Annotated[str, Path(pattern=NAMESPACE, max_length=150)]
FlowId = Annotated[str, Path(pattern=FLOW_ID, max_length=100)]
ExecutionId = Annotated[str, Path(pattern=EXECUTION_ID, max_length=64)]
Key = Annotated[str, Path(pattern=KV_KEY, max_length=255)]


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the ``Error`` body."""
    words = {400: "Bad request", 401: "Missing or invalid credentials", 404: "Not found",
             409: "Conflict with the current state", 413: "Too large",
             415: "Unsupported media type", 422: "Invalid request (issues name the fields)",
             503: "The executor is unavailable"}
    return {code: {"model": Error, "description": words[code]} for code in codes}


COMMON = responses(400, 401, 422, 503)

FLOW_SCHEMA = {
    "type": "object", "required": ["id", "namespace", "tasks"],
    "description": "A flow in Kestra's YAML language: sent as YAML text, checked in full "
                   "(every issue with its line and column)",
    "properties": {
        "id": {"type": "string"}, "namespace": {"type": "string"},
        "tasks": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "type"],
            "properties": {"id": {"type": "string"}, "type": {"type": "string"}}}}}}
YAML_BODY = {"requestBody": {"required": True, "content": {
    "application/x-yaml": {"schema": FLOW_SCHEMA}}}}
YAML_DOCUMENTS = {"requestBody": {"required": True, "content": {"application/x-yaml": {
    "schema": {"description": "One or more flows as YAML documents, separated by ---"}}}}}


def inputs_body(description: str) -> dict[str, Any]:
    fields = {"type": "object", "additionalProperties": {"type": "string"}}
    return {"requestBody": {"required": False, "description": description, "content": {
        "multipart/form-data": {"schema": fields},
        "application/x-www-form-urlencoded": {"schema": fields},
        "application/json": {"schema": {"type": "object", "additionalProperties": True}}}}}


async def yaml_body(request: Request) -> str:
    data = await request.body()
    if not data.strip():
        raise RequestError("a YAML body is required", "body")
    if len(data) > MAX_YAML:
        raise RequestError(f"the YAML body is larger than {MAX_YAML} bytes", "body")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(f"the body is not UTF-8 text: {e.reason} at byte {e.start}",
                           "body") from None


async def read_inputs(request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Inputs from a multipart form (files included), a urlencoded form or a JSON object. A
    field sent more than once is a list."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=MAX_FIELDS, max_fields=MAX_FIELDS)
        except Exception as e:  # malformed multipart: Starlette raises several kinds
            raise RequestError(f"cannot read the form: {e}", "body") from None
        inputs: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for key in form.keys():
            values = form.getlist(key)
            uploads = [v for v in values if isinstance(v, UploadFile)]
            if uploads:
                if len(values) > 1:
                    raise RequestError("one file per FILE input", f"inputs.{key}")
                files[key] = (uploads[0].filename or key, await uploads[0].read())
                await uploads[0].close()
                continue
            inputs[key] = values[0] if len(values) == 1 else list(values)
        return inputs, files
    body = await request.body()
    if not body.strip():
        return {}, {}
    if kind not in ("application/json", ""):
        raise RequestError(f"unsupported content type {kind!r}: send multipart/form-data, "
                           "application/x-www-form-urlencoded or application/json", "body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(f"invalid JSON: {e}", "body") from None
    if not isinstance(data, dict):
        raise RequestError("the inputs must be a JSON object", "body")
    return data, {}


ISO_DATETIME = (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                r"(Z|[+-]\d{2}:\d{2})?$")


DateTime = Annotated[str | None, Query(
    pattern=ISO_DATETIME, max_length=40,
    description="An ISO-8601 date and time, e.g. 2024-01-15T10:30:00Z (UTC when it has no "
                "offset); bounds are inclusive")]


def parse_datetime(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise RequestError(f"{field}: {e}", field) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_labels(labels: list[str] | None) -> dict[str, str]:
    """Kestra's ``labels=key:value`` query parameters."""
    out: dict[str, str] = {}
    for text in labels or ():
        key, sep, value = text.partition(":")
        if not sep or not key.strip():
            raise RequestError(f"label {text!r} is not key:value", "labels")
        out[key.strip()] = value
    return out


_HIDDEN = ("timers", "metadata")


def public(doc: dict[str, Any], *, task_outputs: bool = True) -> dict[str, Any]:
    """An execution as the API shows it: engine bookkeeping (timers, metadata, each task run's
    meta) left out; with ``task_outputs`` false, task runs without their outputs (what
    ``wait=true`` answers: only the flow's declared outputs)."""
    out = {k: v for k, v in doc.items() if k not in _HIDDEN}
    runs = []
    for run in doc.get("taskRuns") or ():
        shown = {k: v for k, v in run.items() if k != "meta"}
        if not task_outputs:
            shown.pop("outputs", None)
        runs.append(shown)
    out["taskRuns"] = runs
    return out


__all__ = ["Client", "Namespace", "FlowId", "ExecutionId", "Key", "responses", "COMMON",
           "YAML_BODY", "YAML_DOCUMENTS", "inputs_body", "yaml_body", "read_inputs",
           "parse_labels", "public", "DateTime", "parse_datetime"]
