"""The executor's side of realtime and polling triggers (``EventTrigger`` entries).

``EventTriggers`` lives in the executor's ``TriggerRunner``. It starts one ``TriggerActor``
(``kray.triggers.actor``) per enabled event trigger and stops it when the trigger is deleted,
disabled (by the API, ``stopAfter`` or the flow) or changed, and answers the actor's calls
(``SchedulerMixin.trigger_*``):

- ``config``: the trigger's source properties, rendered (``secret()`` works), its last
  persisted position and, for a polling trigger, its interval. The secrets the rendering
  read travel along, for the actor to mask its own logs with, and are kept here to mask the
  errors it reports: a broker's message may quote a URL with its password;
- ``events``: one execution per event whose conditions hold, keyed
  ``<ns>/<flow>/<trigger>/msg/<id>`` in the repository's unique ``trigger_key`` column. The
  whole batch's keys are looked up in one query and its executions written in one
  transaction under ``db_lock`` before the answer: the actor acks only then, and a
  redelivered id never gets a second execution, across executor restarts too;
- ``room``: backpressure. The executions of each trigger that are not terminal are counted
  incrementally (added at creation, removed by the execution-ended hook, rebuilt from the
  executor's live executions at start); at ``maxInFlight`` the actor's long poll waits;
- ``report``: status (STARTING, RUNNING, BACKOFF, PAUSED, STOPPED, FAILED), errors, position.

A **watchdog** replaces an actor that died for good (killed with ``no_restart``, its node
gone) or whose loop never started: Ray restarts a crashed actor on its own, but not those.
Every ``WATCH_INTERVAL`` it pings the actors that made no call for ``QUIET_AFTER`` (a busy
or long-polling actor calls every 2 s, so it is rarely pinged; nothing is done per event),
and starts a new actor after an exponential backoff, the trigger showing BACKOFF and why
meanwhile. It also retries a trigger whose actor could not be created.

Positions are persisted in ``TriggerState.data["position"]``, batched: at most one write every
``SAVE_INTERVAL`` for all triggers, and on stop. A position lost to a crash in that window only
makes the source redeliver what the keys already deduplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kray.errors import KrayError
from kray.storage.triggers import TriggerKey
from kray.triggers.actor import BACKOFF_FIRST, actor_name, jittered, next_backoff
from kray.triggers.conditions import ConditionContext, all_true
from kray.triggers.firing import render_inputs
from kray.triggers.models import EventTrigger, PollingTrigger

if TYPE_CHECKING:
    from kray.triggers.runner import Entry, TriggerRunner

log = logging.getLogger("kray.triggers")

SAVE_INTERVAL = 0.5  # seconds between two writes of changed positions
STOP_GRACE = 5.0  # seconds an actor gets to close its source before it is killed
NAME_WAIT = 10.0  # seconds to wait for the name of a stopped actor to be free again
WATCH_INTERVAL = 2.0  # seconds between two rounds of the watchdog
QUIET_AFTER = 3.0  # seconds without a call after which the watchdog pings an actor
PING_TIMEOUT = 5.0  # seconds a ping may take before it counts as a miss
MAX_MISSES = 3  # pings in a row unanswered (or answered "not running") before a replacement


class Status:
    STARTING = "STARTING"  # the actor is being created or is opening its source
    RUNNING = "RUNNING"  # connected, consuming
    BACKOFF = "BACKOFF"  # the broker is unreachable: retrying with exponential backoff
    PAUSED = "PAUSED"  # backpressure: maxInFlight executions are not terminal yet
    STOPPED = "STOPPED"  # no actor (disabled, deleted, or the executor has no Ray)
    FAILED = "FAILED"  # the actor hit an error it cannot retry (see lastError)


BASE_FIELDS = frozenset(PollingTrigger.model_fields)


def source_properties(trigger: EventTrigger, render: Callable[[Any], Any]) -> dict[str, Any]:
    """What the actor builds its source's model from: the trigger's own properties as JSON,
    rendered (secrets...) by ``render``, but for its ``unrendered`` templates (an HTTP
    trigger's responseCondition), which the source renders per event with the event as
    data and so travel as written."""
    data = trigger.model_dump(mode="json", by_alias=True, exclude_none=True,
                              include=set(type(trigger).model_fields) - BASE_FIELDS
                              | {"id", "type", "max_in_flight", "interval"})
    raw = {type(trigger).model_fields[name].alias or name for name in trigger.unrendered}
    kept = {k: data.pop(k) for k in raw if k in data}
    return {**render(data), **kept}


def resume_at(limit: int) -> int:
    """How few executions a PAUSED trigger waits for before it pulls again: a quarter of
    ``maxInFlight`` below it. Waking at every single end hands the executor batches of one
    message, a repository transaction each (a burst of 1000 through ``maxInFlight: 100``
    and a 1-task flow: 134 executions/s, 168 with this); a quarter batches them without
    letting the count drop far."""
    return limit - max(1, limit // 4)


def message_key(namespace: str, flow_id: str, trigger_id: str, message_id: str) -> str:
    """The trigger key of a message's execution."""
    return f"{namespace}/{flow_id}/{trigger_id}/msg/{message_id}"


def fingerprint(trigger: EventTrigger) -> str:
    """What, when it changes, needs a new actor: the source's properties (conditions, inputs
    and labels are applied here, in the executor, so a change of theirs needs none)."""
    return trigger.model_dump_json(exclude={"conditions", "inputs", "labels", "stop_after",
                                            "description", "disabled"})


@dataclass
class Running:
    handle: Any
    generation: str
    fingerprint: str
    seen: float = field(default_factory=time.monotonic)  # its last call (or answered ping)
    misses: int = 0  # watchdog pings in a row that found it unwell


@dataclass
class Live:
    """What the API shows of a running trigger (besides its persisted state)."""

    status: str = Status.STOPPED
    events: int = 0  # since the actor started
    last_event: dict[str, Any] | None = None
    since: str | None = None
    inflight: set[str] = field(default_factory=set)


class EventTriggers:
    def __init__(self, runner: TriggerRunner):
        self.runner = runner
        self.actors: dict[TriggerKey, Running] = {}
        self.live: defaultdict[TriggerKey, Live] = defaultdict(Live)
        self.locks: defaultdict[TriggerKey, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.room_waiters: dict[TriggerKey, asyncio.Event] = {}
        self.dirty: set[TriggerKey] = set()
        self._save_timer: asyncio.TimerHandle | None = None
        self.reviving: dict[TriggerKey, asyncio.TimerHandle] = {}  # a new actor is due
        self.revive_delay: dict[TriggerKey, float] = {}  # the next backoff, per trigger
        self._watchdog: asyncio.Task | None = None
        self.maskers: dict[TriggerKey, Any] = {}  # the secrets each trigger's config read

    # ------------------------------------------------------------------ lifecycle
    def rebuild(self, executions: Any) -> None:
        """Count the live executions each trigger started (the executor just recovered)."""
        for ex in executions:
            meta = ex.metadata.get("trigger") or {}
            if "/msg/" in str(meta.get("key", "")) and not ex.state.current.terminal:
                self.live[(ex.namespace, ex.flow_id, meta.get("id", ""))].inflight.add(ex.id)

    def sync(self, key: TriggerKey) -> None:
        """Make the actor of ``key`` match its entry (start, stop or replace it), soon."""
        self.runner.spawn(self._sync(key))
        if self._watchdog is None and self.wanted(key) is not None:  # the first one: watch
            self._watchdog = asyncio.ensure_future(self._watch())

    def wanted(self, key: TriggerKey) -> Entry | None:
        entry = self.runner.entries.get(key)
        if entry is None or not isinstance(entry.trigger, EventTrigger) or self.runner.off(key):
            return None
        return entry

    async def _sync(self, key: TriggerKey) -> None:
        async with self.locks[key]:
            entry = self.wanted(key)
            current = self.actors.get(key)
            want = fingerprint(entry.trigger) if entry is not None else None  # type: ignore
            if current is not None and current.fingerprint != want:
                await self._stop(key)
            if entry is not None and key not in self.actors:
                await self._start(key, want or "")

    async def _start(self, key: TriggerKey, print_: str) -> None:
        try:
            import ray
            if not ray.is_initialized():
                raise KrayError("realtime triggers need the executor to run in Ray")
            me = ray.get_runtime_context().current_actor
        except Exception as e:
            self._set_error(key, f"trigger actor not started: {e}")
            return
        from kray.triggers.actor import TriggerActor
        name = actor_name(*key)
        generation = uuid.uuid4().hex
        remote = ray.remote(TriggerActor).options(
            name=name, namespace="kray", num_cpus=0, max_restarts=-1, max_task_retries=0,
            max_concurrency=64)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NAME_WAIT
        while True:
            try:
                handle = remote.remote(me, *key, generation)
                break
            except ValueError as e:  # the name of a stopped actor is not free yet
                if loop.time() > deadline:
                    self._set_error(key, f"trigger actor not started: {e}")
                    return
                if loop.time() > deadline - NAME_WAIT / 2:
                    self._kill_stale(name)  # an actor left by an executor that died
                await asyncio.sleep(0.1)
        self.actors[key] = Running(handle, generation, print_)
        live = self.live[key]
        live.status, live.events, live.since = Status.STARTING, 0, _now()

    @staticmethod
    def _kill_stale(name: str) -> None:
        import ray
        try:
            ray.kill(ray.get_actor(name, namespace="kray"), no_restart=True)
        except Exception:
            pass

    async def _stop(self, key: TriggerKey) -> None:
        running = self.actors.pop(key, None)
        self.live[key].status = Status.STOPPED
        waiter = self.room_waiters.get(key)
        if waiter is not None:
            waiter.set()  # its long poll answers "stop"
        if running is None:
            return
        import ray
        try:
            await asyncio.wait_for(running.handle.stop.remote(), STOP_GRACE)
        except Exception as e:  # dead already, or stuck: killed all the same
            log.info("trigger %s did not stop gracefully: %s", key, e)
        ray.kill(running.handle, no_restart=True)
        await self.save_positions()

    # ------------------------------------------------------------------ the actor's calls
    def check(self, key: TriggerKey, generation: str) -> Entry | None:
        """The entry, if the actor of ``generation`` is still the one wanted."""
        running = self.actors.get(key)
        if running is None or running.generation != generation:
            return None
        running.seen = time.monotonic()
        return self.wanted(key)

    def config(self, key: TriggerKey, generation: str) -> dict[str, Any]:
        entry = self.check(key, generation)
        if entry is None:
            return {"stop": True}
        trigger = entry.trigger
        scope = {"flow": {"id": entry.flow_id, "namespace": entry.namespace,
                          "revision": entry.revision}, "labels": dict(trigger.labels)}
        ex = self.runner.ex
        services = self._services(entry.namespace)
        data = source_properties(trigger, lambda v: ex.engine.render_value(v, scope, services))
        self.maskers[key] = services.masker
        state = self.runner.states.get(key)
        interval = trigger.interval.total_seconds() \
            if isinstance(trigger, PollingTrigger) else None
        return {"type": trigger.type, "trigger": data, "interval": interval,
                "position": state.data.get("position") if state is not None else None,
                "secrets": services.masker.values(),
                "context": {"namespace": key[0], "flow_id": key[1], "trigger_id": key[2],
                            "name": "/".join(key),
                            # kray's internal storage, for sources that copy files into it
                            "storage_url": ex.config.resolved_storage_url(),
                            "storage_options": dict(ex.config.storage_options)}}

    def _services(self, namespace: str) -> Any:
        from kray.runcontext import Services
        from kray.storage.secrets import Masker, SecretStore
        ex = self.runner.ex
        return Services(secrets=SecretStore(secrets_file=ex.config.secrets_file),
                        masker=Masker(), kv=ex.kvstore, storage=ex.storage, namespace=namespace)

    async def events(self, key: TriggerKey, generation: str, events: list[dict[str, Any]],
                     position: Any = None) -> dict[str, Any]:
        """One execution per new event; durable when this returns."""
        entry = self.check(key, generation)
        if entry is None:
            return {"stop": True}
        runner = self.runner
        state = runner.states[key]
        trigger = entry.trigger
        live = self.live[key]
        by_key: dict[str, dict[str, Any]] = {}
        for event in events:  # an id twice in one batch: its first event
            by_key.setdefault(message_key(*key, str(event["id"])), event)
        made = await runner.create_once(
            list(by_key),
            lambda tkey: self._create(entry, state, tkey, by_key[tkey].get("variables") or {}))
        for execution in made:
            if not execution.state.current.terminal:
                live.inflight.add(execution.id)
            state.last_execution_id = execution.id
        created = len(made)
        now = _now()
        live.events += len(events)
        live.last_event = {"id": str(events[-1]["id"]), "at": now} if events else None
        if created:
            from kray.triggers.runner import now_utc
            state.last_fired = now_utc()
        state.data["position"] = position
        state.data["lastEvent"] = live.last_event
        self._dirty(key)
        if live.status == Status.STARTING:
            live.status = Status.RUNNING
        return {"inFlight": len(live.inflight), "created": created,
                "limit": trigger.max_in_flight}

    def _create(self, entry: Entry, state: Any, tkey: str, variables: dict[str, Any]) -> Any:
        """The execution of one event, if its conditions hold; None otherwise (a bad
        condition or input is the trigger's last error, the event is skipped)."""
        runner = self.runner
        trigger = entry.trigger
        scope = runner.scope(entry, variables)
        evaluate = runner.ex.engine.evaluate
        meta = {"id": trigger.id, "type": trigger.kind, "key": tkey}
        try:
            if not all_true(trigger.conditions, ConditionContext(_utc(), scope, evaluate)):
                return None
            inputs = render_inputs(evaluate, trigger.inputs, scope)
            # The entry's revision is the latest (entries follow deploys): its plan is
            # cached, where "the latest" would cost a repository query per event.
            return runner.ex._new_execution(entry.namespace, entry.flow_id, inputs,
                                            labels=dict(trigger.labels), trigger=variables,
                                            revision=entry.revision,
                                            metadata={"trigger": meta})
        except KrayError as e:
            state.last_error = f"{tkey}: {e}"
            log.warning("trigger %s: %s", entry.key, state.last_error)
            return None

    async def room(self, key: TriggerKey, generation: str, timeout: float) -> Any:
        """How many more executions the trigger may start: at once when it has room, else
        after waiting (at most ``timeout``) for some of its executions to end; 0 if none
        did."""
        entry = self.check(key, generation)
        if entry is None:
            return {"stop": True}
        live = self.live[key]
        limit = entry.trigger.max_in_flight
        if len(live.inflight) >= limit:
            live.status = Status.PAUSED
            waiter = self.room_waiters[key] = asyncio.Event()
            try:
                await asyncio.wait_for(waiter.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                if self.room_waiters.get(key) is waiter:
                    del self.room_waiters[key]
            if self.check(key, generation) is None:
                return {"stop": True}
        room = max(0, limit - len(live.inflight))
        if room and live.status == Status.PAUSED:
            live.status = Status.RUNNING
        return room

    def report(self, key: TriggerKey, generation: str, status: str | None,
               error: str | None, position: Any, set_position: bool) -> dict[str, Any]:
        if self.check(key, generation) is None:
            return {"stop": True}
        live, state = self.live[key], self.runner.states[key]
        masker = self.maskers.get(key)
        if error is not None and masker is not None:
            error = masker.mask(error)
        if status is not None:
            live.status = status
            if status == Status.RUNNING:
                error = None
                self.revive_delay.pop(key, None)  # healthy again: the next death starts over
        if status is not None or error is not None:
            if error is not None:
                log.warning("trigger %s: %s", "/".join(key), error)
            if state.last_error != error and (error is not None or status == Status.RUNNING):
                state.last_error = error
                self._dirty(key)
        if set_position:
            state.data["position"] = position
            self._dirty(key)
        return {"ok": True}

    # ------------------------------------------------------------------ executor hooks
    def ended(self, execution: Any, meta: dict[str, Any]) -> None:
        """An execution ended: one fewer in flight for its trigger (wake a paused actor)."""
        key = (execution.namespace, execution.flow_id, meta.get("id", ""))
        live = self.live.get(key)
        if live is None or execution.id not in live.inflight:
            return
        live.inflight.discard(execution.id)
        waiter = self.room_waiters.get(key)
        entry = self.runner.entries.get(key)
        if waiter is not None and (entry is None or not isinstance(entry.trigger, EventTrigger)
                                   or len(live.inflight) <= resume_at(
                                       entry.trigger.max_in_flight)):
            waiter.set()

    def view(self, key: TriggerKey) -> dict[str, Any]:
        """What the trigger API adds to an event trigger's context."""
        live = self.live.get(key) or Live()
        state = self.runner.states.get(key)
        data = state.data if state is not None else {}
        status = live.status if key in self.actors or key in self.reviving \
            else Status.STOPPED
        return {"status": status, "events": live.events, "since": live.since,
                "lastEvent": live.last_event or data.get("lastEvent"),
                "position": data.get("position"), "inFlight": len(live.inflight)}

    # ------------------------------------------------------------------ watchdog
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.check_actors()
            except Exception:
                log.exception("trigger watchdog round failed")

    async def check_actors(self) -> None:
        """One round: ping the quiet actors, replace the dead or stuck ones, and retry the
        triggers that want an actor but have none (its creation failed)."""
        now = time.monotonic()
        quiet = [(k, r) for k, r in self.actors.items() if now - r.seen > QUIET_AFTER]
        verdicts = await asyncio.gather(*(self._probe(r) for _, r in quiet))
        for (key, running), verdict in zip(quiet, verdicts):
            if verdict is not None:
                self._revive(key, running, verdict)
        for key, live in list(self.live.items()):
            if live.status == Status.FAILED and key not in self.actors \
                    and key not in self.reviving and not self.locks[key].locked() \
                    and self.wanted(key) is not None:
                state = self.runner.states.get(key)
                self._revive(key, None, state.last_error if state is not None
                             and state.last_error else "trigger actor not started")

    async def _probe(self, running: Running) -> str | None:
        """Why ``running`` must be replaced, or None while it is well (or may still be: a
        crashed actor that Ray is restarting misses a ping or two)."""
        from ray.exceptions import ActorDiedError
        try:
            answer = await asyncio.wait_for(running.handle.ping.remote(), PING_TIMEOUT)
        except ActorDiedError as e:
            return f"trigger actor died: {_first_line(e)}"
        except Exception as e:  # restarting, or stuck
            running.misses += 1
            if running.misses < MAX_MISSES:
                return None
            return f"trigger actor not answering: {type(e).__name__}: {_first_line(e)}"
        if answer.get("running"):
            running.misses, running.seen = 0, time.monotonic()
            return None
        running.misses += 1  # alive, but its loop has not started (or ended)
        return "trigger actor is not running its source" if running.misses >= MAX_MISSES \
            else None

    def _revive(self, key: TriggerKey, running: Running | None, reason: str) -> None:
        """Drop ``running`` (killed, in case it is only stuck) and start a new actor after
        the trigger's next backoff; the status says so meanwhile."""
        if running is not None:
            if self.actors.get(key) is not running:
                return  # replaced or stopped meanwhile
            del self.actors[key]
            waiter = self.room_waiters.get(key)
            if waiter is not None:
                waiter.set()
            try:
                import ray
                ray.kill(running.handle, no_restart=True)
            except Exception:
                pass
        delay = self.revive_delay.get(key, BACKOFF_FIRST)
        self.revive_delay[key] = next_backoff(delay)
        wait = jittered(delay)
        live = self.live[key]
        live.status = Status.BACKOFF
        state = self.runner.states.get(key)
        message = f"{reason}; a new one starts in {wait:.1f}s"
        log.warning("trigger %s: %s", "/".join(key), message)
        if state is not None and state.last_error != message:
            state.last_error = message
            self._dirty(key)

        def due() -> None:
            self.reviving.pop(key, None)
            self.sync(key)
        self.reviving[key] = asyncio.get_running_loop().call_later(wait, due)

    # ------------------------------------------------------------------ persistence
    def _set_error(self, key: TriggerKey, error: str) -> None:
        log.error("trigger %s: %s", "/".join(key), error)
        self.live[key].status = Status.FAILED
        state = self.runner.states.get(key)
        if state is not None:
            state.last_error = error
            self._dirty(key)

    def _dirty(self, key: TriggerKey) -> None:
        self.dirty.add(key)
        if self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(
                SAVE_INTERVAL, lambda: self.runner.spawn(self.save_positions()))

    async def save_positions(self) -> None:
        """Write the states whose position, last event or error changed, in one go."""
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        keys, self.dirty = self.dirty, set()
        states = [self.runner.states[k] for k in keys if k in self.runner.states]
        await self.runner.save(*states)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _utc() -> Any:
    from kray.triggers.runner import now_utc
    return now_utc()


def _now() -> str:
    return _utc().isoformat()


__all__ = ["EventTriggers", "Status", "fingerprint", "message_key"]
