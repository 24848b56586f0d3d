"""The API's documented shapes, for the OpenAPI spec.

Routes return plain JSON built by the executor (no per-response model validation on the hot
path); these models say what that JSON is, and the schemathesis test holds them to it.
Timestamps are ISO-8601 strings with their offset.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kray.engine.state import State


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Issue(BaseModel):
    message: str
    path: str = Field("", description="The field, e.g. `tasks[1].message` or `inputs.day`")
    file: str | None = None
    line: int | None = Field(None, description="1-based line in the YAML, when known")
    column: int | None = Field(None, description="1-based column in the YAML, when known")
    location: str | None = Field(None, alias="in",
                                 description="Where the field was sent: body, query, path...")


class Error(BaseModel):
    message: str
    issues: list[Issue] = Field(default_factory=list)


class Attempt(_Open):
    state: State
    startDate: str | None = None
    endDate: str | None = None
    error: str | None = None


class TaskRun(_Open):
    id: str
    executionId: str
    taskId: str
    parentTaskRunId: str | None = None
    value: Any = None
    iteration: int | None = None
    state: State
    startDate: str | None = None
    endDate: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class Execution(_Open):
    id: str
    namespace: str
    flowId: str
    flowRevision: int | None = None
    state: State
    startDate: str | None = None
    endDate: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict,
                                    description="The flow's declared outputs")
    parentId: str | None = Field(None, description="Replay: the execution replayed")
    originalId: str | None = None
    error: str | None = None
    taskRuns: list[TaskRun] = Field(default_factory=list)
    taskRunCount: int | None = Field(None, description="With taskRuns=false: how many")
    taskRunStates: dict[str, int] | None = Field(None, description="With taskRuns=false: "
                                                 "how many task runs in each state")


class PagedExecutions(BaseModel):
    results: list[Execution]
    total: int


class Flow(_Open):
    id: str
    namespace: str
    revision: int
    updated: str | None = None
    deleted: bool = False
    source: str | None = Field(None, description="The YAML source")


class PagedFlows(BaseModel):
    results: list[Flow]
    total: int


class FlowRef(BaseModel):
    namespace: str
    id: str
    revision: int | None = None


class FlowValidation(BaseModel):
    index: int = Field(description="The document's position in the body, from 0")
    namespace: str | None = None
    id: str | None = None
    valid: bool
    issues: list[Issue]


class NamespaceSync(BaseModel):
    updated: list[FlowRef]
    deleted: list[FlowRef]


class LogLine(_Open):
    executionId: str
    taskRunId: str | None = None
    taskId: str | None = None
    attempt: int | None = None
    level: str
    timestamp: str | None = None
    message: str | None = None


class PagedLogs(BaseModel):
    results: list[LogLine]
    total: int


class KVEntry(BaseModel):
    key: str
    type: str = Field(description="STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION or JSON")
    value: Any = None
    expiresAt: str | None = None
    updated: str | None = None


class NamespaceFile(BaseModel):
    path: str = Field(description="The file's path in its namespace, from /")
    uri: str = Field(description="Its kray:// URI")
    size: int | None = None


class Health(BaseModel):
    status: str


__all__ = ["Error", "Issue", "Execution", "PagedExecutions", "Flow", "PagedFlows",
           "FlowValidation", "NamespaceSync", "LogLine", "PagedLogs", "KVEntry",
           "NamespaceFile", "Health", "TaskRun"]
