"""Fixtures for the storage tests: real DuckDB files, real fsspec filesystems, a moto S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kray.storage.internal import InternalStorage
from kray.storage.repository import Repository
from tests.conftest import skip_or_fail
from tests.s3server import create_bucket, moto_available, moto_s3_server, s3_storage_options

S3_BUCKET = "kray-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for the whole session, with the test bucket created."""
    if not moto_available():
        skip_or_fail("moto[server] is not installed: no S3 endpoint for the s3fs tests")
    with moto_s3_server() as endpoint:
        create_bucket(endpoint, S3_BUCKET)
        yield endpoint


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository(tmp_path / "data" / "kray.duckdb")
    yield repository
    repository.close()


def _memory_storage() -> Iterator[InternalStorage]:
    name = f"kray-test-{uuid.uuid4().hex}"
    storage = InternalStorage(f"memory://{name}")
    yield storage
    if storage.fs.exists(f"/{name}"):
        storage.fs.rm(f"/{name}", recursive=True)


def _s3_storage(endpoint: str) -> Iterator[InternalStorage]:
    prefix = f"root-{uuid.uuid4().hex}"
    storage = InternalStorage(f"s3://{S3_BUCKET}/{prefix}", **s3_storage_options(endpoint))
    yield storage
    for uri in storage.list(""):
        storage.delete(uri)


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InternalStorage]:
    """The same tests on every backend: a local folder, fsspec memory, s3fs against moto."""
    if request.param == "local":
        yield InternalStorage(str(tmp_path / "storage"))
    elif request.param == "memory":
        yield from _memory_storage()
    else:
        yield from _s3_storage(request.getfixturevalue("s3_endpoint"))


@pytest.fixture
def make_execution() -> Any:
    """A factory of ``Execution.to_dict()``-shaped documents."""
    def make(eid: str | None = None, *, namespace: str = "company.team", flow_id: str = "etl",
             state: str = "RUNNING", start: str = "2024-01-01T00:00:00+00:00",
             end: str | None = None, labels: dict[str, str] | None = None,
             task_runs: int = 2, **extra: Any) -> dict[str, Any]:
        eid = eid or uuid.uuid4().hex[:22]
        doc = {"id": eid, "namespace": namespace, "flowId": flow_id, "flowRevision": 1,
               "state": state, "startDate": start, "endDate": end,
               "histories": [{"state": state, "date": start}], "inputs": {},
               "labels": labels or {}, "trigger": None, "outputs": {}, "parentId": None,
               "originalId": eid, "parentTaskRun": None, "error": None, "timers": {},
               "taskRuns": [{"id": f"{eid}-tr{i}", "executionId": eid, "taskId": f"t{i}",
                             "state": "SUCCESS", "outputs": {"value": i}}
                            for i in range(task_runs)]}
        doc.update(extra)
        return doc
    return make

