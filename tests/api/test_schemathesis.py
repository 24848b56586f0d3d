"""Schemathesis over the live OpenAPI spec, with credentials: no 5xx, and every answer as
the spec says (status code, content type, body schema). Bounded: a few examples per
operation."""

from __future__ import annotations

import pytest

from tests.api.conftest import PASSWORD, USER, LiveServer

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

from kray.config import basic_header  # noqa: E402

pytestmark = pytest.mark.ray

EXAMPLES_PER_OPERATION = 3  # about 45 operations: ~130 requests


@pytest.fixture(scope="session")
def api_schema(live_server: LiveServer) -> object:
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json",
                                         auth=(USER, PASSWORD), timeout=30)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_api_matches_its_spec(case: object) -> None:
    case.call_and_validate(headers={"Authorization": basic_header(USER, PASSWORD)},  # type: ignore[attr-defined]
                           timeout=30)
