"""``TriggerActor``: the long-lived Ray actor that runs one realtime or polling trigger.

One actor per enabled trigger (``kray-trigger:<ns>/<flow>/<trigger>`` in Ray namespace
``kray``), started and stopped by the executor (``kray.triggers.realtime``). It owns one
``Source`` and loops:

1. ask the executor how much room its trigger has (``trigger_room``: a long poll that
   answers only once fewer than ``maxInFlight`` of its executions are still not terminal, so
   a paused trigger costs nothing and the rest of a burst waits in the broker);
2. ``fetch`` at most that many messages;
3. hand them to the executor (``trigger_events``), which answers once their executions are
   durable (each message id gets at most one execution, ever);
4. only then ``ack`` them, and report the source's position if it moved.

A ``SourceError`` (broker gone) closes the source, reports BACKOFF and opens a new one after
an exponential, jittered delay (0.5 s doubling up to 30 s). The actor is created with
``max_restarts=-1``: killed, Ray brings it back, it starts itself again and asks the
executor for the last position, so it resumes where the last acknowledged batch ended.
It is owned by the executor, so it dies with it; a restarted executor starts new ones.

Every call names the actor's ``generation``: an actor the executor no longer wants (its
trigger deleted, disabled or changed) is told to stop at its next call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import traceback
from typing import Any

from kray.storage.secrets import Masker
from kray.triggers.sources import Message, Source, SourceError, source_types

log = logging.getLogger("kray.triggers.actor")

NAME_PREFIX = "kray-trigger:"
BACKOFF_FIRST = 0.5  # seconds before the first reconnection
BACKOFF_MAX = 30.0
FETCH_TIMEOUT = 2.0  # seconds a realtime fetch waits for a first message
ROOM_TIMEOUT = 30.0  # seconds a paused trigger's long poll lasts before it asks again
MAX_BATCH = 500  # messages per fetch, whatever the room


def actor_name(namespace: str, flow_id: str, trigger_id: str) -> str:
    return f"{NAME_PREFIX}{namespace}/{flow_id}/{trigger_id}"


def next_backoff(delay: float) -> float:
    """The delay after ``delay``: doubled, capped at ``BACKOFF_MAX``."""
    return min(BACKOFF_MAX, delay * 2)


def jittered(delay: float) -> float:
    """``delay`` give or take 20 %, so that triggers of one broker do not reconnect in step."""
    return delay * random.uniform(0.8, 1.2)


class Stop(Exception):
    """The executor no longer wants this actor."""


class TriggerActor:
    """Runs one trigger's source (see the module docstring). Wrapped with ``ray.remote`` by
    the executor; its methods are async, so Ray runs it as an async actor."""

    def __init__(self, executor: Any, namespace: str, flow_id: str, trigger_id: str,
                 generation: str):
        self.executor = executor
        self.key = (namespace, flow_id, trigger_id)
        self.generation = generation
        self.source: Source | None = None
        self.task: asyncio.Task | None = None
        self.stopping = False
        self.masker: Masker | None = None  # the secrets the config's rendering read
        # Start on our own, also when Ray restarts us after a crash or a kill (Ray reruns
        # only the constructor). A call to ourselves made while Ray still counts us as
        # restarting can be refused: a thread repeats it until one is taken.
        threading.Thread(target=_start_self, daemon=True, name="kray-trigger-start").start()

    # ------------------------------------------------------------------ control
    async def start(self) -> bool:
        if self.task is None and not self.stopping:
            self.task = asyncio.ensure_future(self._run())
        return True

    async def stop(self) -> bool:
        """Graceful stop: leave the loop and close the source (the executor then kills us)."""
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except BaseException:
                pass
        await self._close()
        return True

    async def ping(self) -> dict[str, Any]:
        import os
        return {"pid": os.getpid(), "running": self.task is not None and not self.task.done()}

    # ------------------------------------------------------------------ the loop
    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        answer = await getattr(self.executor, method).remote(*self.key, self.generation,
                                                             *args, **kwargs)
        if isinstance(answer, dict) and answer.get("stop"):
            raise Stop()
        return answer

    async def _run(self) -> None:
        """Open, consume, and on any failure close, report it, back off and start again:
        what was fetched but not acknowledged comes back from the broker, and the executor
        gives each message id one execution only."""
        delay = BACKOFF_FIRST
        position: Any = None
        config: dict[str, Any] | None = None
        while not self.stopping:
            try:
                if config is None:
                    config = await self._call("trigger_config")
                    position = config.get("position")
                    self.masker = Masker(config.get("secrets") or ())
                kind = source_types()[config["type"]]
                model = kind.model.model_validate(config["trigger"])
                self.source = kind.source_class()(model, position, config.get("context"))
                await self.source.open()
                await self._call("trigger_status", "RUNNING")
                delay = BACKOFF_FIRST
                position = await self._consume(self.source, position, config.get("interval"))
            except Stop:
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:  # SourceError: the broker; else the executor, or a bug
                if self.source is not None:
                    position = self._position(self.source, position)
                await self._close()
                wait = jittered(delay)
                reason = self._mask(str(e) or type(e).__name__)
                if not isinstance(e, SourceError):
                    log.warning("trigger %s failed: %s", "/".join(self.key),
                                self._mask(traceback.format_exc()))
                    reason = f"{type(e).__name__}: {reason}"
                try:
                    await self._call("trigger_status", "BACKOFF",
                                     f"{reason} (retrying in {wait:.1f}s)")
                except Stop:
                    break
                except Exception:
                    pass  # the executor is away too: retry all the same
                await asyncio.sleep(wait)
                delay = next_backoff(delay)
        await self._close()

    async def _consume(self, source: Source, position: Any, polling: float | None) -> Any:
        """Fetch, hand over, ack, until stopped (a ``SourceError`` ends it)."""
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while not self.stopping:
            room = int(await self._call("trigger_room", ROOM_TIMEOUT))
            if room <= 0:
                continue  # still paused after a long poll: ask again
            if polling is not None:
                wait = next_poll - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                next_poll = loop.time() + polling
            limit = min(room, MAX_BATCH)
            messages = await source.fetch(limit, 0.0 if polling is not None else FETCH_TIMEOUT)
            if not messages:
                continue
            moved = self._position(source, position)
            await self._call("trigger_events", [_event(m) for m in messages], moved)
            await source.ack(messages)
            after = self._position(source, moved)
            if after != moved:
                await self._call("trigger_status", None, None, after, True)
            position = after
            if polling is not None and (len(messages) >= limit
                                        or getattr(source, "more_pending", False)):
                next_poll = loop.time()  # more is waiting: poll again at once
        return position

    def _mask(self, text: str) -> str:
        """``text`` without the trigger's secrets, for the actor's own log and what it
        reports (the executor masks that again with the same secrets)."""
        return self.masker.mask(text) if self.masker is not None else text

    @staticmethod
    def _position(source: Source, default: Any) -> Any:
        try:
            return source.position()
        except Exception:
            return default

    async def _close(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            try:
                await source.close()
            except Exception:
                log.warning("closing the source of %s failed", "/".join(self.key),
                            exc_info=True)


def _start_self() -> None:
    try:
        import ray
        me = ray.get_runtime_context().current_actor
    except Exception:  # not in a Ray actor: whoever built us calls start()
        return
    for _ in range(120):
        try:
            ray.get(me.start.remote(), timeout=30)
            return
        except Exception as e:
            log.info("trigger actor start refused, again: %s", e)
            time.sleep(0.5)


def _event(message: Message) -> dict[str, Any]:
    return {"id": str(message.id), "variables": message.variables}


__all__ = ["NAME_PREFIX", "TriggerActor", "actor_name", "jittered", "next_backoff"]
