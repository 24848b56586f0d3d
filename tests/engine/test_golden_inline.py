"""Every golden flow, stepped through the pure core in-process (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kray.flow.parse import load_flow
from kray.inline import InlineRunner
from tests.flows.golden import VALID, check, expectations


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_golden_flow_inline(path: Path, tmp_path: Path) -> None:
    expect = expectations(path)
    others = [load_flow(path.parent / name) for name in expect.get("flows", [])]
    runner = InlineRunner(tmp_path, flows=others)
    execution = runner.run(load_flow(path), expect.get("inputs"))
    check(execution.to_dict(), expect)
