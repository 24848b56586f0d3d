from __future__ import annotations

from collections.abc import Callable

import pytest

from kray.errors import FlowValidationError, Issue
from kray.flow.model import Flow
from kray.flow.parse import parse_flow
from kray.registry import PluginRegistry

from .tasks import make_registry


@pytest.fixture
def registry() -> PluginRegistry:
    return make_registry()


@pytest.fixture
def parse(registry: PluginRegistry) -> Callable[[str], Flow]:
    def run(source: str) -> Flow:
        return parse_flow(source, file="flow.yaml", registry=registry)
    return run


@pytest.fixture
def issues(registry: PluginRegistry) -> Callable[[str], list[Issue]]:
    """The issues of an invalid flow (fails the test if the flow is valid)."""
    def run(source: str) -> list[Issue]:
        with pytest.raises(FlowValidationError) as info:
            parse_flow(source, file="flow.yaml", registry=registry)
        assert info.value.issues, "a FlowValidationError without issues"
        return info.value.issues
    return run
