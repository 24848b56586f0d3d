"""What an event source is: the contract between a trigger actor and a broker or a poll.

A realtime or polling trigger runs as a long-lived Ray actor (``kray.triggers.actor``); the
actor owns one ``Source`` and loops: ``fetch`` a batch, hand it to the executor, which makes
each message's execution durable (deduplicated by ``Message.id``), then ``ack`` it. A source
never creates executions and never talks to the repository.

Delivery contract:
- ``Message.id`` is stable across redeliveries of the same message (a stream entry id, a
  JetStream sequence, a delivery's message id, a file's path and version, a poll's instant):
  the executor gives each id at most one execution, ever.
- ``ack`` is called only after the executor made the batch's executions durable. A source
  that cannot redeliver (Redis pub/sub, MQTT QoS 0, NATS core) says so with
  ``redelivers = False`` and its docs say so too.
- ``position()`` is what the actor persists (in the trigger's state) after an ack, and what
  the next ``Source`` is built with after a restart: JSON data, or None when the broker keeps
  the position itself (consumer groups, durable consumers). The executor persists it in
  batches (every ~0.5 s and when the trigger stops), so after a crash a source may be rebuilt
  with a slightly older position: what it then fetches again is deduplicated by id.

How the actor calls a source (``kray.triggers.actor``):
- realtime (an ``EventTrigger``): ``fetch(room, 2.0)`` in a loop, ``room`` being at most
  ``maxInFlight`` minus the trigger's executions not yet terminal (never more than 500);
- polling (a ``PollingTrigger``): ``fetch(room, 0.0)`` once per ``interval`` (the first
  right after ``open``), and again at once when a poll filled ``room`` (more is waiting);
- any exception from ``open``/``fetch``/``ack`` closes the source and, after an
  exponential backoff (0.5 s doubling to 30 s, jittered), a new one is built with the last
  position and opened. ``SourceError`` is the expected one (shown as the trigger's error).
- ``context``: ``namespace``, ``flow_id``, ``trigger_id`` and ``name``
  (``<namespace>/<flow_id>/<trigger_id>``), stable across restarts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Message:
    """One event. ``variables`` become the execution's ``trigger.*`` (JSON data only);
    ``token`` is what ``ack`` needs and never leaves the actor."""

    id: str
    variables: dict[str, Any]
    token: Any = field(default=None, compare=False, repr=False)


class SourceError(Exception):
    """The broker is unreachable or refused us: the actor backs off and opens a new source."""


class Source(ABC):
    """One trigger's connection to its broker (or its poll). Built in the actor from the
    trigger's validated model and the last persisted position."""

    #: Whether a message fetched but never acknowledged comes back after a restart.
    redelivers: ClassVar[bool] = True

    def __init__(self, trigger: Any, position: dict[str, Any] | None = None,
                 context: dict[str, Any] | None = None):
        self.trigger = trigger  # the trigger's pydantic model (properties already rendered)
        self.initial_position = position
        self.context = context or {}  # namespace, flow_id, trigger_id, consumer name...

    @abstractmethod
    async def open(self) -> None:
        """Connect (and declare consumer groups, durable consumers, queues). Raises
        ``SourceError`` when the broker cannot be reached."""

    @abstractmethod
    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages, waiting at most ``timeout`` seconds for the
        first; [] when none came. Raises ``SourceError`` when the connection is lost."""

    @abstractmethod
    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge these messages (their executions are durable)."""

    def position(self) -> dict[str, Any] | None:
        """The JSON position to persist after an ack; None when the broker keeps it."""
        return None

    async def close(self) -> None:
        """Release the connection; never raises."""


__all__ = ["Message", "Source", "SourceError"]
