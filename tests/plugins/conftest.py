from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kray.testing import TaskRunner

SECRET = "s3cr3t-api-token"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[TaskRunner]:
    """A runner over real storage and a real DuckDB KV store under ``tmp_path``."""
    with TaskRunner(tmp_path, secrets={"KRAY_SECRET_API": SECRET}, namespace="company.team",
                    flow_id="hello", log_level="TRACE") as r:
        yield r
