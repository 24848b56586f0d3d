"""Per namespace: the KV store (typed values, optional TTL) and namespace files."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from kray.api.deps import COMMON, Client, Key, Namespace, responses
from kray.api.models import KVEntry, NamespaceFile
from kray.api.responses import JSON
from kray.executor_store import MAX_FILE_BYTES, RequestError
from kray.storage.kv import KV_TYPES

router = APIRouter(prefix="/namespaces/{namespace}", tags=["Namespaces"], responses=COMMON)

MAX_VALUE = 1024 * 1024
FilePath = Annotated[str, Query(min_length=1, max_length=1024,
                                description="The file's path in the namespace")]
TTL_HELP = "Time to live: an ISO-8601 duration (PT1H) or a number of seconds"


def parse_ttl(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    from kray.flow.inputs import InvalidInput, parse_duration
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except (InvalidInput, OverflowError, ValueError):
            raise RequestError(f"ttl {text!r}: {TTL_HELP}", "ttl") from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 100 * 365 * 86400:
        raise RequestError(f"ttl {text!r} must be positive (and under 100 years)", "ttl")
    return seconds


# -- KV ----------------------------------------------------------------------------------
@router.get("/kv", response_model=list[KVEntry], summary="The namespace's KV entries")
async def kv_list(namespace: Namespace, client: Client) -> Response:
    return JSON(await client.call("kv_entries", namespace))


@router.get("/kv/{key}", response_model=KVEntry, responses=responses(404),
            summary="A KV entry")
async def kv_get(namespace: Namespace, key: Key, client: Client) -> Response:
    return JSON(await client.call("kv_entry", namespace, key))


@router.put("/kv/{key}", response_model=KVEntry, summary="Set a KV entry", openapi_extra={
    "requestBody": {"required": True, "description": "The value: JSON (a string, number, "
                    "boolean, object or array), or plain text taken as a string",
                    "content": {"application/json": {"schema": {}},
                                "text/plain": {"schema": {"type": "string"}}}}})
async def kv_put(
        namespace: Namespace, key: Key, request: Request, client: Client,
        ttl: Annotated[str | None, Query(max_length=40, description=TTL_HELP)] = None,
        ttl_header: Annotated[str | None, Header(alias="ttl", max_length=40,
                                                 description=TTL_HELP)] = None,
        type: Annotated[str | None, Query(max_length=20, description="The value's type, "
                                          + ", ".join(KV_TYPES))] = None) -> Response:
    body = await request.body()
    if len(body) > MAX_VALUE:
        raise RequestError(f"the value is larger than {MAX_VALUE} bytes", "value")
    value = _value(body, request.headers.get("content-type", ""))
    kv_type = type.upper() if type else None
    if kv_type is not None and kv_type not in KV_TYPES:
        raise RequestError(f"unknown type {type!r}; use one of {', '.join(KV_TYPES)}", "type")
    entry = await client.call("kv_put", namespace, key, value,
                              ttl_seconds=parse_ttl(ttl if ttl is not None else ttl_header),
                              kv_type=kv_type)
    return JSON(entry)


def _value(body: bytes, content_type: str) -> Any:
    if not body.strip():
        raise RequestError("a value is required (the request body)", "value")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the value is not UTF-8 text", "value") from None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        if content_type.split(";")[0].strip().lower() == "application/json":
            raise RequestError("the value is not valid JSON", "value") from None
        return text
    if value is None:
        raise RequestError("a value cannot be null; delete the key instead", "value")
    return value


@router.delete("/kv/{key}", status_code=204, response_class=Response,
               responses=responses(404), summary="Delete a KV entry")
async def kv_delete(namespace: Namespace, key: Key, client: Client) -> Response:
    await client.call("kv_delete", namespace, key)
    return Response(status_code=204)


# -- namespace files ---------------------------------------------------------------------
@router.get("/files/directory", response_model=list[NamespaceFile],
            summary="The namespace's files (under a folder)")
async def list_files(namespace: Namespace, client: Client,
                     path: Annotated[str, Query(max_length=1024)] = "") -> Response:
    return JSON(await client.call("namespace_files", namespace, path))


@router.get("/files", response_class=Response, responses={
    **responses(404), 200: {"description": "The file's content", "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    summary="Download a namespace file")
async def get_file(namespace: Namespace, path: FilePath, client: Client) -> Response:
    data = await client.call("namespace_file", namespace, path)
    return Response(data, media_type="application/octet-stream")


@router.post("/files", response_model=NamespaceFile, responses=responses(413, 415),
             summary="Upload a namespace file (replaces it)", openapi_extra={
                 "requestBody": {"required": True, "content": {
                     "multipart/form-data": {"schema": {
                         "type": "object", "required": ["fileContent"], "properties": {
                             "fileContent": {"type": "string", "format": "binary"}}}},
                     "application/octet-stream": {"schema": {"type": "string",
                                                             "format": "binary"}}}}})
async def put_file(namespace: Namespace, path: FilePath, request: Request,
                   client: Client) -> Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/octet-stream"):
        return JSON({"message": "send the file as multipart/form-data (fileContent) or "
                                "application/octet-stream",
                     "issues": [{"message": f"unsupported content type {kind!r}",
                                 "path": "Content-Type", "in": "header", "file": None,
                                 "line": None, "column": None}]}, status_code=415)
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as e:  # malformed multipart
            raise RequestError(f"cannot read the form: {e}", "body") from None
        part = form.get("fileContent")
        if part is None:
            raise RequestError("the form needs a fileContent part", "fileContent")
        data = await part.read() if isinstance(part, UploadFile) else str(part).encode()
    else:
        data = await request.body()
    if len(data) > MAX_FILE_BYTES:
        return JSON({"message": f"larger than {MAX_FILE_BYTES} bytes", "issues": []},
                    status_code=413)
    return JSON(await client.call("put_namespace_file", namespace, path, data))


@router.delete("/files", status_code=204, response_class=Response, responses=responses(404),
               summary="Delete a namespace file")
async def delete_file(namespace: Namespace, path: FilePath, client: Client) -> Response:
    await client.call("delete_namespace_file", namespace, path)
    return Response(status_code=204)
