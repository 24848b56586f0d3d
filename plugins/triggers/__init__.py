"""kray.plugins.triggers: realtime triggers (Redis list, stream and pub/sub, MQTT, NATS core
and JetStream, AMQP) and polling triggers (HTTP, files on any fsspec path, PostgreSQL).

Each module defines its trigger models and calls ``register_source`` at import; the client
libraries (redis, aiomqtt, nats-py, aio-pika, psycopg, s3fs) are imported only by the
sources, inside the trigger actors: ``pip install 'kray[triggers]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("redis", "mqtt", "nats", "amqp", "http", "files", "sql")


def register(registry: Any) -> None:
    """Entry point (group ``kray.plugins``): register every trigger type of this plugin."""
    from kray.triggers.sources import SOURCE_TYPES

    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")  # each calls register_source
    for name, kind in SOURCE_TYPES.items():
        if kind.source.startswith(f"{__name__}."):
            registry.register_trigger_type(name, kind.model)


__all__ = ["MODULES", "register"]
