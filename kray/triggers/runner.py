"""``TriggerRunner``: the executor's trigger machinery (timers, persistence, firing).

It lives inside the executor actor (one per executor, built by ``SchedulerMixin``) and
carries out the pure decisions of this package: which ticks are due (``schedule``),
conditions, preconditions. It keeps each trigger's state in the repository
(``kray.storage.triggers``) and creates executions through the executor's own
``_new_execution``.

Exactly once: an execution started for a schedule tick (or a backfill tick, or an upstream
execution's end) gets a trigger key. Under the executor's ``db_lock`` the key is looked up
and, if free, the execution is created and written with its key in a transaction of its
own, before any group commit sees it: a tick that already has its execution is skipped, and
a duplicate key can never reach (and sink) a group commit's batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kray.engine.state import State
from kray.errors import FlowNotFound, KrayError
from kray.storage.repository import RepositoryError
from kray.storage.triggers import (
    TriggerKey,
    TriggerState,
    delete_states,
    load_states,
    save_states,
)
from kray.triggers.conditions import ConditionContext, all_true
from kray.triggers.firing import (
    ended_key,
    ended_view,
    flow_variables,
    render_inputs,
    tick_key,
)
from kray.triggers.models import (
    FlowTrigger,
    ScheduleTrigger,
    TriggerBase,
    parse_trigger,
)
from kray.triggers.preconditions import advance
from kray.triggers.realtime import EventTriggers
from kray.triggers.schedule import backfill_ticks, plan_schedule, schedule_variables

if TYPE_CHECKING:
    from kray.engine.execution import Execution
    from kray.executor import ExecutorService

log = logging.getLogger("kray.triggers")

PLAN_LIMIT = 100  # ticks started per planning round (a long downtime with ALL: rounds follow)
ROUND_INTERVAL = 0.25  # seconds between those rounds
MAX_SLEEP = 60.0  # a schedule timer wakes at least this often: the wall clock may drift
BACKFILL_BATCH = 10  # ticks started per backfill step
BACKFILL_INTERVAL = 0.25  # seconds between backfill steps
BACKFILL_MAX_RUNNING = 20  # a backfill waits while this many of its executions run


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Entry:
    """A trigger of the latest revision of a deployed flow."""

    namespace: str
    flow_id: str
    revision: int
    flow_disabled: bool
    trigger: TriggerBase

    @property
    def key(self) -> TriggerKey:
        return (self.namespace, self.flow_id, self.trigger.id)


def _source_off(entry: Entry) -> bool:
    return entry.trigger.disabled or entry.flow_disabled


class TriggerRunner:
    def __init__(self, executor: ExecutorService):
        self.ex = executor
        self.entries: dict[TriggerKey, Entry] = {}
        self.states: dict[TriggerKey, TriggerState] = {}
        self.since: dict[TriggerKey, datetime] = {}  # when this executor began watching
        self.locks: defaultdict[Any, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.flow_keys: set[TriggerKey] = set()  # the Flow triggers, looked at on every end
        self.loaded = False
        self._timers: dict[TriggerKey, asyncio.TimerHandle] = {}
        self._backfills: dict[TriggerKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()
        self._pending_ends: list[tuple[dict, dict | None]] = []
        self._unparsed: set[tuple[str, str]] = set()  # flows whose triggers could not load
        self.realtime = EventTriggers(self)  # realtime and polling triggers' actors

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load every trigger state and every deployed flow's triggers; arm them."""
        repo = self.ex.repo
        self.states = {s.key: s for s in await asyncio.to_thread(load_states, repo)}
        self.realtime.rebuild(self.ex.live.values())
        now = now_utc()
        for doc in await asyncio.to_thread(repo.list_flows):
            if "triggers" in doc["source"]:
                await self.sync_flow(doc["namespace"], doc["id"], now)
        orphans = [k for k in self.states
                   if k not in self.entries and k[:2] not in self._unparsed]
        await asyncio.to_thread(delete_states, repo, orphans)
        for key in orphans:
            self.states.pop(key, None)
        self.loaded = True
        for ended, meta in self._pending_ends:
            self._dispatch_end(ended, meta)
        self._pending_ends.clear()

    def flow_changed(self, namespace: str, flow_id: str) -> None:
        self.spawn(self.sync_flow(namespace, flow_id, now_utc()))

    def execution_ended(self, execution: Any) -> None:
        meta = execution.metadata.get("trigger")
        if meta is None and self.loaded and not self.flow_keys:
            return  # the common case, on the executor's hot path: nothing to look at
        if meta is not None:
            self.realtime.ended(execution, meta)
        ended = ended_view(execution)
        if not self.loaded:  # ended while recovering: handled once the triggers are loaded
            self._pending_ends.append((ended, meta))
        else:
            self._dispatch_end(ended, meta)

    def _dispatch_end(self, ended: dict, meta: dict | None) -> None:
        if meta is not None:
            self.spawn(self._stop_after(ended, meta))
        if self.flow_keys:
            self.spawn(self._on_ended(ended))

    # ------------------------------------------------------------------ flows
    def _parse_flow(self, namespace: str, flow_id: str) -> list[Entry]:
        """The flow's triggers that the scheduler runs; none when the flow is gone. A flow
        that no longer parses (a plugin missing) raises: its triggers are left as they are."""
        try:
            flow = self.ex._plan_for(namespace, flow_id).flow
        except FlowNotFound:
            return []
        entries = []
        for trigger in flow.triggers:
            try:
                model = parse_trigger(trigger)
            except ValidationError as e:
                log.error("trigger %s of %s/%s ignored: %s", trigger.id, namespace, flow_id, e)
                continue
            if model is not None:
                entries.append(Entry(namespace, flow_id, flow.revision or 1, flow.disabled,
                                     model))
        return entries

    async def sync_flow(self, namespace: str, flow_id: str, now: datetime) -> None:
        """Make the running triggers match the flow's latest revision."""
        async with self.locks[(namespace, flow_id)]:
            try:
                new = {e.key: e for e in self._parse_flow(namespace, flow_id)}
            except KrayError as e:
                log.error("triggers of %s/%s left as they were: %s", namespace, flow_id, e)
                self._unparsed.add((namespace, flow_id))
                return
            self._unparsed.discard((namespace, flow_id))
            gone = sorted({k for k in (*self.entries, *self.states)
                           if k[:2] == (namespace, flow_id) and k not in new})
            for key in gone:
                self.cancel(key)
                self.entries.pop(key, None)
                self.states.pop(key, None)
                self.since.pop(key, None)
                self.realtime.sync(key)
            changed = []
            for key, entry in new.items():
                state = self.states.get(key)
                if state is None or state.type != entry.trigger.kind:
                    state = self.states[key] = TriggerState(*key, type=entry.trigger.kind)
                    changed.append(state)
                old = self.entries.get(key)
                if isinstance(entry.trigger, ScheduleTrigger):
                    fingerprint = entry.trigger.fingerprint()
                    switched_on = old is not None and _source_off(old) and not _source_off(entry)
                    if state.data.get("fingerprint") != fingerprint or switched_on:
                        # A new or changed schedule, or one the flow turns on again, starts
                        # from now: the ticks of another cron, or of its time off, are not owed.
                        state.data["fingerprint"] = fingerprint
                        state.watermark = now
                        self.since[key] = now
                        changed.append(state)
                self.entries[key] = entry
                self.since.setdefault(key, now)
            self.flow_keys = {k for k, e in self.entries.items()
                              if isinstance(e.trigger, FlowTrigger)}
            await asyncio.to_thread(delete_states, self.ex.repo, gone)
            await self.save(*changed)
            for key in new:
                self.cancel(key)
                self.resume(key)

    def resume(self, key: TriggerKey) -> None:
        """Plan a schedule now and carry on its backfill, if the trigger is on; start, stop
        or replace an event trigger's actor."""
        entry = self.entries.get(key)
        self.realtime.sync(key)
        if entry is None or self.off(key) or not isinstance(entry.trigger, ScheduleTrigger):
            return
        self.spawn(self._run_schedule(key))
        if self.states[key].data.get("backfill"):
            self.arm_backfill(key, 0)

    # ------------------------------------------------------------------ schedules
    def _arm(self, key: TriggerKey, at: datetime | None) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if at is not None:
            delay = min(MAX_SLEEP, max(0.0, (at - now_utc()).total_seconds()))
            self._timers[key] = asyncio.get_running_loop().call_later(
                delay, self._timer_fired, key)

    def _timer_fired(self, key: TriggerKey) -> None:
        self._timers.pop(key, None)
        self.spawn(self._run_schedule(key))

    async def _run_schedule(self, key: TriggerKey) -> None:
        """Start the ticks that are due, persist the watermark, arm the next timer."""
        async with self.locks[key]:
            entry, state = self.entries.get(key), self.states.get(key)
            if entry is None or state is None or self.off(key) \
                    or not isinstance(entry.trigger, ScheduleTrigger):
                return
            trigger = entry.trigger
            now = now_utc()
            plan = plan_schedule(trigger.schedule, watermark=state.watermark, now=now,
                                 since=self.since.get(key, now),
                                 recover=trigger.recover_missed_schedules,
                                 late_maximum_delay=trigger.late_maximum_delay,
                                 limit=PLAN_LIMIT)
            for tick in plan.late:
                log.warning("%s: tick %s skipped, later than lateMaximumDelay", key, tick)
            for tick in plan.fire:
                await self._fire_tick(entry, trigger, state, tick)
            # A wake-up that found nothing due need not be written: no tick lies between
            # the stored watermark and this one.
            quiet = not (plan.fire or plan.late) and plan.next_tick == state.next_tick
            state.watermark, state.next_tick = plan.watermark, plan.next_tick
            if not quiet:
                await self.save(state)
            if self.entries.get(key) is entry and not self.off(key):
                if plan.more:  # a long downtime recovered with ALL: paced rounds
                    self._arm(key, now_utc() + timedelta(seconds=ROUND_INTERVAL))
                else:
                    self._arm(key, plan.next_tick)

    async def _fire_tick(self, entry: Entry, trigger: ScheduleTrigger, state: TriggerState,
                         tick: datetime, backfill: Mapping[str, Any] | None = None
                         ) -> Execution | None:
        """One tick's execution, if its conditions hold. A backfill's inputs and labels are
        the user's data: they override the trigger's, never rendered as templates."""
        variables = schedule_variables(trigger.schedule, tick)
        labels = {**trigger.labels, **((backfill or {}).get("labels") or {})}
        scope = self.scope(entry, variables)
        try:
            if not all_true(trigger.conditions,
                            ConditionContext(tick, scope, self.ex.engine.evaluate)):
                return None
            inputs = {**render_inputs(self.ex.engine.evaluate, trigger.inputs, scope),
                      **((backfill or {}).get("inputs") or {})}
        except KrayError as e:
            state.last_error = f"tick {tick.isoformat()}: {e}"
            log.warning("%s: %s", entry.key, state.last_error)
            return None
        key = tick_key(entry.namespace, entry.flow_id, trigger.id, tick)
        return await self.create_keyed(entry, state, key, inputs, labels, variables,
                                       backfill=backfill is not None)

    async def create_keyed(self, entry: Entry, state: TriggerState, key: str,
                           inputs: dict[str, Any], labels: dict[str, str],
                           variables: dict[str, Any], backfill: bool = False
                           ) -> Execution | None:
        """Create the execution for ``key`` unless one exists; durable on return."""
        meta: dict[str, Any] = {"id": entry.trigger.id, "type": entry.trigger.kind, "key": key}
        if backfill:
            meta["backfill"] = True

        def create(_: str) -> Execution | None:
            try:
                return self.ex._new_execution(entry.namespace, entry.flow_id, inputs,
                                              labels=labels, trigger=variables,
                                              metadata={"trigger": meta})
            except KrayError as e:
                state.last_error = f"{key}: {e}"
                log.warning("trigger %s: %s", entry.key, state.last_error)
                return None

        made = await self.create_once([key], create)
        if not made:
            return None
        execution = made[0]
        state.last_execution_id, state.last_fired, state.last_error = \
            execution.id, now_utc(), None
        return execution

    async def create_once(self, keys: list[str],
                          create: Callable[[str], Execution | None]) -> list[Execution]:
        """``create(key)``'s execution for each of ``keys`` that has none yet (None: it
        creates nothing), in order. Under the executor's ``db_lock`` the keys are looked up
        in one query and the new executions written with their keys in one transaction of
        their own, before any group commit sees them: durable on return, and a key never
        gets a second execution, whoever asks (a schedule tick, an upstream end, a
        redelivered message)."""
        ex, lock = self.ex, self.ex.db_lock
        if lock is None:
            raise KrayError("the executor has not started")
        made: list[tuple[str, Execution]] = []
        async with lock:
            existing = await asyncio.to_thread(ex.repo.existing_trigger_keys, keys)
            for key in keys:
                if key in existing:
                    continue
                existing.add(key)  # the same key twice in one call: the first only
                execution = create(key)
                if execution is not None:
                    made.append((key, execution))
            if made:
                try:
                    await asyncio.to_thread(ex.repo.write_batch, [
                        {**ex._doc(execution), "triggerKey": key} for key, execution in made])
                except RepositoryError as e:  # the group commit still writes them, keyless
                    log.error("trigger keys %s not written: %s", [k for k, _ in made], e)
        return [execution for _, execution in made]

    # ------------------------------------------------------------------ backfills
    def arm_backfill(self, key: TriggerKey, delay: float) -> None:
        old = self._backfills.pop(key, None)
        if old is not None:
            old.cancel()
        self._backfills[key] = asyncio.get_running_loop().call_later(
            delay, lambda: self.spawn(self._backfill_step(key)))

    async def _backfill_step(self, key: TriggerKey) -> None:
        """Start the next few ticks of a backfill; paced, and waiting while many of its
        executions still run, so a long range never floods the executor."""
        self._backfills.pop(key, None)
        done = True
        async with self.locks[key]:
            entry, state = self.entries.get(key), self.states.get(key)
            if entry is None or state is None or self.off(key) \
                    or not isinstance(entry.trigger, ScheduleTrigger):
                return
            backfill = state.data.get("backfill")
            if not backfill or backfill.get("paused"):
                return
            running = sum(1 for ex in self.ex.live.values()
                          if ex.namespace == entry.namespace and ex.flow_id == entry.flow_id
                          and (ex.metadata.get("trigger") or {}).get("backfill"))
            room = min(BACKFILL_BATCH, BACKFILL_MAX_RUNNING - running)
            done = False
            if room > 0:
                last = backfill.get("last")
                ticks, done = backfill_ticks(
                    entry.trigger.schedule, start=datetime.fromisoformat(backfill["start"]),
                    end=datetime.fromisoformat(backfill["end"]),
                    after=datetime.fromisoformat(last) if last else None, limit=room)
                for tick in ticks:
                    if await self._fire_tick(entry, entry.trigger, state, tick,
                                             backfill) is not None:
                        backfill["executions"] = backfill.get("executions", 0) + 1
                    backfill["last"] = tick.isoformat()
                if done:
                    backfill["ended"] = now_utc().isoformat()
                    state.data["lastBackfill"] = state.data.pop("backfill")
                await self.save(state)
        if not done:
            self.arm_backfill(key, BACKFILL_INTERVAL)

    # ------------------------------------------------------------------ Flow triggers
    async def _on_ended(self, ended: dict) -> None:
        now = now_utc()
        for key in sorted(self.flow_keys):
            entry, state = self.entries.get(key), self.states.get(key)
            if entry is None or state is None or self.off(key) \
                    or not isinstance(entry.trigger, FlowTrigger):
                continue
            trigger = entry.trigger
            if (entry.namespace, entry.flow_id) == (ended["namespace"], ended["flowId"]) \
                    or State(ended["state"]) not in trigger.states:
                continue  # a flow never triggers itself
            variables = flow_variables(ended)
            scope = self.scope(entry, variables, execution=ended)
            async with self.locks[key]:
                try:
                    if not all_true(trigger.conditions,
                                    ConditionContext(now, scope, self.ex.engine.evaluate,
                                                     ended)):
                        continue
                    if trigger.preconditions is not None:
                        old = state.data.get("preconditions")
                        fire, progress = advance(trigger.preconditions, old, ended, now)
                        if progress != old:
                            state.data["preconditions"] = progress
                            await self.save(state)
                        if not fire:
                            continue
                    inputs = render_inputs(self.ex.engine.evaluate, trigger.inputs, scope)
                except KrayError as e:
                    state.last_error = f"execution {ended['id']}: {e}"
                    await self.save(state)
                    continue
                key_of_end = ended_key(entry.namespace, entry.flow_id, trigger.id, ended)
                await self.create_keyed(entry, state, key_of_end, inputs, dict(trigger.labels),
                                        variables)
                await self.save(state)

    async def _stop_after(self, ended: dict, meta: dict) -> None:
        """``stopAfter``: disable the trigger once an execution it started ends so."""
        key = (ended["namespace"], ended["flowId"], meta.get("id", ""))
        entry, state = self.entries.get(key), self.states.get(key)
        if entry is None or state is None or state.disabled \
                or State(ended["state"]) not in entry.trigger.stop_after:
            return
        async with self.locks[key]:
            state.disabled = True
            state.data["stoppedBy"] = {"executionId": ended["id"], "state": ended["state"]}
            self.cancel(key)
            self.realtime.sync(key)
            await self.save(state)
        log.warning("trigger %s disabled: execution %s ended %s (stopAfter)", key,
                    ended["id"], ended["state"])

    # ------------------------------------------------------------------ helpers
    def off(self, key: TriggerKey) -> bool:
        """Whether the trigger must not start anything (gone, or disabled anywhere)."""
        entry, state = self.entries.get(key), self.states.get(key)
        return entry is None or state is None or _source_off(entry) or state.disabled

    def scope(self, entry: Entry, variables: dict[str, Any],
              execution: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a trigger's conditions and inputs are rendered with."""
        scope: dict[str, Any] = {
            "trigger": variables, "labels": dict(entry.trigger.labels),
            "flow": {"id": entry.flow_id, "namespace": entry.namespace,
                     "revision": entry.revision}}
        if execution is not None:
            scope["execution"] = {k: execution[k] for k in
                                  ("id", "namespace", "flowId", "state", "labels", "outputs")}
        return scope

    def cancel(self, key: TriggerKey) -> None:
        for handles in (self._timers, self._backfills):
            handle = handles.pop(key, None)
            if handle is not None:
                handle.cancel()

    async def save(self, *states: TriggerState) -> None:
        if states:
            await asyncio.to_thread(save_states, self.ex.repo, states)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("trigger work failed", exc_info=task.exception())
