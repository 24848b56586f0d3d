from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from kray.templating import TemplateEngine

FIXED_NOW = datetime(2024, 3, 15, 10, 30, 45, 123456, tzinfo=timezone.utc)


@pytest.fixture
def engine() -> TemplateEngine:
    return TemplateEngine(clock=lambda: FIXED_NOW)


@pytest.fixture
def variables() -> dict[str, Any]:
    return {
        "flow": {"id": "hello", "namespace": "company.team"},
        "inputs": {"name": "World", "count": 3, "flag": True, "nothing": None, "items": [1, 2, 3],
                   "empty": "", "blank": "  ", "map": {"a": 1, "b": 2}},
        "outputs": {"t1": {"value": "one", "values": {"x": 10}}, "each": {"v1": {"n": 1}}},
        "vars": {"greeting": "Hello {{ inputs.name }}", "nested": "{{ vars.greeting }}!"},
        "taskrun": {"value": "v1"},
    }
