"""Golden invalid flows: ``tests/flows/invalid/*.yaml``, validated with the real registry.

Each file starts with comment lines that say what validation must report:

    # expect: <line>:<column>: <substring of the message>    (one or more)
    # requires: <type> <type> ...                             (task types the flow relies on)
    # requires-templating                                     (needs kray.templating)

Every expected issue must be found, and nothing else: the number of issues is the number of
``expect`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kray.errors import FlowValidationError
from kray.flow.parse import load_flow, template_checker
from kray.registry import PluginRegistry

INVALID = Path(__file__).resolve().parent.parent / "flows" / "invalid"
_EXPECT = re.compile(r"#\s*expect:\s*(\d+):(\d+):\s?(.*)")


@dataclass
class Golden:
    path: Path
    expected: list[tuple[int, int, str]] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    needs_templating: bool = False


def read_golden(path: Path) -> Golden:
    golden = Golden(path)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _EXPECT.match(line):
            golden.expected.append((int(m[1]), int(m[2]), m[3].strip()))
        elif line.startswith("# requires-templating"):
            golden.needs_templating = True
        elif line.startswith("# requires:"):
            golden.requires.extend(line.split(":", 1)[1].split())
    return golden


GOLDEN_FILES = sorted(INVALID.glob("*.yaml"))


def test_there_are_golden_invalid_flows() -> None:
    assert len(GOLDEN_FILES) >= 12
    for path in GOLDEN_FILES:
        assert read_golden(path).expected, f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_invalid_flow(path: Path) -> None:
    golden = read_golden(path)
    registry = PluginRegistry.default()
    missing = [t for t in golden.requires if t not in registry]
    if missing:
        pytest.skip(f"core types not registered yet: {', '.join(missing)}")
    if golden.needs_templating and template_checker() is None:
        pytest.skip("kray.templating.TemplateEngine is not importable yet")

    with pytest.raises(FlowValidationError) as info:
        load_flow(path, registry)
    issues = info.value.issues
    got = [(i.line, i.column, i.message) for i in issues]
    for line, column, fragment in golden.expected:
        assert any(g[:2] == (line, column) and fragment in g[2] for g in got), (
            f"expected {line}:{column}: {fragment!r}; got:\n" + str(info.value))
    assert len(issues) == len(golden.expected), f"unexpected issues:\n{info.value}"
    assert all(i.file == str(path) for i in issues)
    positions = [(i.line or 0, i.column or 0) for i in issues]
    assert positions == sorted(positions)
