"""Fixtures for the DuckDB tests: a moto S3 endpoint for internal storage on s3fs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kray.storage.internal import InternalStorage
from tests.conftest import skip_or_fail
from tests.s3server import (
    create_bucket,
    moto_available,
    moto_s3_server,
    s3_storage_options,
)

BUCKET = "kray-duckdb-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    if not moto_available():
        skip_or_fail("moto[server] is not installed: no S3 endpoint for the s3fs tests")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        skip_or_fail("s3fs is not installed")
    with moto_s3_server() as endpoint:
        create_bucket(endpoint, BUCKET)
        yield endpoint


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Iterator[InternalStorage]:
    storage = InternalStorage(f"s3://{BUCKET}/root-{uuid.uuid4().hex}",
                              **s3_storage_options(s3_endpoint))
    yield storage
    for uri in storage.list(""):
        storage.delete(uri)


@pytest.fixture
def memory_storage() -> Iterator[InternalStorage]:
    name = f"kray-duckdb-{uuid.uuid4().hex}"
    storage = InternalStorage(f"memory://{name}")
    yield storage
    if storage.fs.exists(f"/{name}"):
        storage.fs.rm(f"/{name}", recursive=True)
