"""A task's ``resources`` and ``runtimeEnv`` become Ray options."""

from __future__ import annotations

import pytest

from kray.errors import KrayError
from kray.executor import parse_memory, ray_options
from kray.registry import PluginRegistry


def log_task(**extra):
    cls = PluginRegistry.default().resolve("io.kestra.plugin.core.log.Log")
    return cls.model_validate({"id": "t", "type": "io.kestra.plugin.core.log.Log",
                               "message": "m", **extra})


def test_resources_map_to_ray_options() -> None:
    task = log_task(resources={"cpu": 2, "gpu": 0.5, "memory": "512Mi", "accelerator_x": 1},
                    runtimeEnv={"env_vars": {"A": "1"}})
    assert ray_options(task) == {"num_cpus": 2, "num_gpus": 0.5, "memory": 512 * 1024**2,
                                 "resources": {"accelerator_x": 1.0},
                                 "runtime_env": {"env_vars": {"A": "1"}}}
    assert ray_options(log_task()) == {}


@pytest.mark.parametrize("text,value", [("1GB", 10**9), ("2Gi", 2 * 1024**3), (1234, 1234),
                                        ("1.5Mi", int(1.5 * 1024**2)), ("100", 100)])
def test_memory_sizes(text, value) -> None:
    assert parse_memory(text) == value


def test_bad_memory_size_is_a_clear_error() -> None:
    with pytest.raises(KrayError, match="bad memory size"):
        parse_memory("lots")
