"""Every golden flow end to end on the session's Ray, through ``kray.runner.run_flow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kray.runner import RunOptions, run_flow
from tests.flows.golden import VALID, check, expectations

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_golden_flow_on_ray(path: Path, executor, data_dir: Path) -> None:
    expect = expectations(path)
    if expect.get("ray") is False:
        pytest.skip("marked ray: false (needs the inline runner's virtual clock)")
    flows_dir = None
    if expect.get("flows"):
        flows_dir = str(path.parent)
    options = RunOptions(inputs={k: str(v) for k, v in (expect.get("inputs") or {}).items()},
                         flows_dir=flows_dir, data_dir=str(data_dir))
    execution = run_flow(path, options)
    check(execution, expect)
