"""The executor's side of realtime and polling triggers (``EventTrigger`` entries).

``EventTriggers`` lives in the executor's ``TriggerRunner``. It starts one ``TriggerActor``
(``kray.triggers.actor``) per enabled event trigger and stops it when the trigger is deleted,
disabled (by the API, ``stopAfter`` or the flow) or changed, and answers the actor's calls
(``SchedulerMixin.trigger_*``):

- ``config``: the trigger's source properties, rendered (``secret()`` works), its last
  persisted position and, for a polling trigger, its interval;
- ``events``: one execution per event whose conditions hold, keyed
  ``<ns>/<flow>/<trigger>/msg/<id>`` in the repository's unique ``trigger_key`` column. The
  whole batch's keys are looked up in one query and its executions written in one
  transaction under ``db_lock`` before the answer: the actor acks only then, and a
  redelivered id never gets a second execution, across executor restarts too;
- ``room``: backpressure. The executions of each trigger that are not terminal are counted
  incrementally (added at creation, removed by the execution-ended hook, rebuilt from the
  executor's live executions at start); at ``maxInFlight`` the actor's long poll waits;
- ``report``: status (STARTING, RUNNING, BACKOFF, PAUSED, STOPPED, FAILED), errors, position.

Positions are persisted in ``TriggerState.data["position"]``, batched: at most one write every
``SAVE_INTERVAL`` for all triggers, and on stop. A position lost to a crash in that window only
makes the source redeliver what the keys already deduplicate.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kray.errors import KrayError
from kray.storage.triggers import TriggerKey
from kray.triggers.actor import actor_name
from kray.triggers.conditions import ConditionContext, all_true
from kray.triggers.firing import render_inputs
from kray.triggers.models import EventTrigger, PollingTrigger

if TYPE_CHECKING:
    from kray.triggers.runner import Entry, TriggerRunner

log = logging.getLogger("kray.triggers")

SAVE_INTERVAL = 0.5  # seconds between two writes of changed positions
STOP_GRACE = 5.0  # seconds an actor gets to close its source before it is killed
NAME_WAIT = 10.0  # seconds to wait for the name of a stopped actor to be free again



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

class Status:
    STARTING = "STARTING"  # the actor is being created or is opening its source
    RUNNING = "RUNNING"  # connected, consuming
    BACKOFF = "BACKOFF"  # the broker is unreachable: retrying with exponential backoff
    PAUSED = "PAUSED"  # backpressure: maxInFlight executions are not terminal yet
    STOPPED = "STOPPED"  # no actor (disabled, deleted, or the executor has no Ray)
    FAILED = "FAILED"  # the actor hit an error it cannot retry (see lastError)


BASE_FIELDS = frozenset(PollingTrigger.model_fields)


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
        state = self.runner.states.get(key)
        interval = trigger.interval.total_seconds() \
            if isinstance(trigger, PollingTrigger) else None
        return {"type": trigger.type, "trigger": data, "interval": interval,
                "position": state.data.get("position") if state is not None else None,
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
        ex, runner = self.runner.ex, self.runner
        state = runner.states[key]
        trigger = entry.trigger
        live = self.live[key]
        keys = [message_key(*key, str(e["id"])) for e in events]
        created = 0
        if ex.db_lock is None:
            raise KrayError("the executor has not started")
        async with ex.db_lock:
            existing = await asyncio.to_thread(ex.repo.existing_trigger_keys, keys)
            docs = []
            for event, tkey in zip(events, keys):
                if tkey in existing:
                    continue
                existing.add(tkey)
                execution = self._create(entry, state, tkey, event.get("variables") or {})
                if execution is None:
                    continue
                docs.append({**ex._doc(execution), "triggerKey": tkey})
                if not execution.state.current.terminal:
                    live.inflight.add(execution.id)
                state.last_execution_id = execution.id
                created += 1
            if docs:
                await asyncio.to_thread(ex.repo.write_batch, docs)
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
        if status is not None:
            live.status = status
            if status == Status.RUNNING:
                error = None
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
                                   or len(live.inflight) < entry.trigger.max_in_flight):
            waiter.set()

    def view(self, key: TriggerKey) -> dict[str, Any]:
        """What the trigger API adds to an event trigger's context."""
        live = self.live.get(key) or Live()
        state = self.runner.states.get(key)
        data = state.data if state is not None else {}
        status = live.status if key in self.actors else Status.STOPPED
        return {"status": status, "events": live.events, "since": live.since,
                "lastEvent": live.last_event or data.get("lastEvent"),
                "position": data.get("position"), "inFlight": len(live.inflight)}

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


def _utc() -> Any:
    from kray.triggers.runner import now_utc
    return now_utc()


def _now() -> str:
    return _utc().isoformat()


__all__ = ["EventTriggers", "Status", "fingerprint", "message_key"]
