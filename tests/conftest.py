"""Shared fixtures. Ray tests share one local Ray (127.0.0.1) and one executor per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# In CI, a test that would skip for a missing service fails instead.
REQUIRE_SERVICES = os.environ.get("KRAY_REQUIRE_SERVICES") == "1"
# Secrets every Ray worker of the session sees (workers inherit the environment at ray.init).
SECRET_PLAIN = "s3cr3t-Value-42"
SECRET_KESTRA = "kestra-style-secret"
AMQP_WRONG_PASSWORD = "n0t-the-Pa55word-913"  # a trigger's secret that RabbitMQ refuses
SECRET_TRIGGER = "tr1gger-S3cret-77"  # a trigger's secret that a broker's error quotes


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray for the whole session, on loopback only."""
    import base64

    import ray

    os.environ["KRAY_SECRET_E2E_TOKEN"] = SECRET_PLAIN
    os.environ["SECRET_E2E_B64"] = base64.b64encode(SECRET_KESTRA.encode()).decode()
    os.environ["KRAY_SECRET_AMQP_PASSWORD"] = "guest"  # RabbitMQ's guest account
    os.environ["KRAY_SECRET_AMQP_WRONG_PASSWORD"] = AMQP_WRONG_PASSWORD
    os.environ["KRAY_SECRET_E2E_TRIGGER"] = SECRET_TRIGGER
    from kray.runner import loopback_only

    loopback_only()
    # address="local": always a fresh Ray of our own, never another session's cluster.
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
             namespace="kray",
             log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kray-data")


@pytest.fixture(scope="session")
def executor(ray_session, data_dir: Path):
    """The session's executor actor (created on first use, shared by every Ray test)."""
    from kray.executor import ExecutorConfig, executor_actor

    actor = executor_actor(ExecutorConfig(data_dir=str(data_dir)))
    ray_session.get(actor.ping.remote())
    return actor
