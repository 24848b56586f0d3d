"""Triggers inside the executor: schedules, backfills, Flow triggers and webhooks.

One place, in the executor, so that a restart cannot double-fire (see
``kray.triggers.runner`` for how each tick gets exactly one execution). ``SchedulerMixin`` is
mixed into ``ExecutorService``: the executor calls its three hooks, the API calls its public
methods (trigger search, enable/disable, backfills, webhooks) through the actor.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kray.errors import KrayError
from kray.storage.triggers import TriggerKey
from kray.triggers.conditions import ConditionContext, all_true
from kray.triggers.firing import render_inputs, webhook_variables
from kray.triggers.models import EventTrigger, ScheduleTrigger, WebhookTrigger
from kray.triggers.runner import Entry, TriggerRunner, log, now_utc

if TYPE_CHECKING:
    from kray.executor import ExecutorService

WEBHOOK_METHODS = ("GET", "POST", "PUT")


class SchedulerMixin:
    """The executor's trigger hooks and trigger API (state lives in one ``TriggerRunner``)."""

    @property
    def _executor(self) -> ExecutorService:
        return self  # type: ignore[return-value]  # always mixed into ExecutorService

    @property
    def _triggers(self) -> TriggerRunner:
        runner = self.__dict__.get("_trigger_runner")
        if runner is None:
            runner = self.__dict__["_trigger_runner"] = TriggerRunner(self._executor)
        return runner  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ hooks
    async def _start_triggers(self) -> None:
        """Called once the executor has recovered: arm every trigger."""
        await self._triggers.start()

    def _flow_changed(self, namespace: str, flow_id: str) -> None:
        """Called after a flow was deployed, changed or deleted."""
        self._triggers.flow_changed(namespace, flow_id)

    def _trigger_on_end(self, execution: Any) -> None:
        """Called when an execution reaches a terminal state (Flow triggers, stopAfter)."""
        self._triggers.execution_ended(execution)

    # ------------------------------------------------------------------ webhooks
    async def webhook(self, namespace: str, flow_id: str, key: str, method: str = "POST",
                      body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
                      params: Iterable[tuple[str, str]] = ()) -> dict:
        """Start the flow's webhook trigger whose key is ``key``: ``{"status": 200,
        "execution": ...}``, or ``{"status": 204}`` when its conditions are not met.
        ``NotFound`` for an unknown flow or key, or a disabled trigger. The body, headers
        and parameters are data (``trigger.body``...), never compiled as templates."""
        from kray.executor_store import NotFound, RequestError
        if method.upper() not in WEBHOOK_METHODS:
            raise RequestError(f"a webhook answers {', '.join(WEBHOOK_METHODS)}, not {method}",
                               "method")
        await self._executor._ensure_started()
        runner = self._triggers
        found: Entry | None = None
        for tkey in [k for k in runner.entries if k[:2] == (namespace, flow_id)]:
            entry = runner.entries[tkey]
            # Every key of the flow is compared, in constant time each.
            if isinstance(entry.trigger, WebhookTrigger) and hmac.compare_digest(
                    entry.trigger.key.encode(), key.encode()):
                found = entry
        if found is None or runner.off(found.key):
            raise NotFound(f"no webhook trigger of flow {namespace}/{flow_id} with this key")
        variables = webhook_variables(body, headers, params)
        scope = runner.scope(found, variables)
        evaluate = runner.ex.engine.evaluate
        try:
            met = all_true(found.trigger.conditions,
                           ConditionContext(now_utc(), scope, evaluate))
        except KrayError as e:
            log.info("webhook %s: conditions not evaluated (%s)", found.key, e)
            met = False
        if not met:
            return {"status": 204}
        inputs = render_inputs(evaluate, found.trigger.inputs, scope)
        executor = self._executor
        ex = executor._new_execution(namespace, flow_id, inputs,
                                     labels=dict(found.trigger.labels), trigger=variables,
                                     metadata={"trigger": {"id": found.trigger.id,
                                                           "type": found.trigger.kind}})
        await executor._flush()
        state = runner.states[found.key]
        state.last_execution_id, state.last_fired = ex.id, now_utc()
        await runner.save(state)
        return {"status": 200, "execution": executor._doc(ex)}

    # ------------------------------------------------------------------ trigger actors
    # Called by the realtime and polling triggers' actors (``kray.triggers.actor``), each
    # naming its trigger and its generation; ``{"stop": True}`` tells a stale actor to stop.
    async def trigger_config(self, namespace: str, flow_id: str, trigger_id: str,
                             generation: str) -> dict:
        """``{type, trigger, position, interval, context}``: the trigger's source properties
        (rendered), its last persisted position, a polling trigger's interval in seconds."""
        await self._executor._ensure_started()
        return self._triggers.realtime.config((namespace, flow_id, trigger_id), generation)

    async def trigger_events(self, namespace: str, flow_id: str, trigger_id: str,
                             generation: str, events: list[dict], position: Any = None
                             ) -> dict:
        """One execution per event ``{id, variables}`` whose conditions hold, exactly once
        per id; durable on return, so the actor may ack. Returns ``{inFlight, created,
        limit}``: how many of the trigger's executions are not terminal yet."""
        await self._executor._ensure_started()
        return await self._triggers.realtime.events((namespace, flow_id, trigger_id),
                                                    generation, events, position)

    async def trigger_room(self, namespace: str, flow_id: str, trigger_id: str,
                           generation: str, timeout: float = 30.0) -> Any:
        """Backpressure long poll: how many more executions the trigger may start, once it
        may start any (0 after ``timeout`` seconds without room)."""
        await self._executor._ensure_started()
        return await self._triggers.realtime.room((namespace, flow_id, trigger_id),
                                                  generation, timeout)

    async def trigger_status(self, namespace: str, flow_id: str, trigger_id: str,
                             generation: str, status: str | None = None,
                             error: str | None = None, position: Any = None,
                             set_position: bool = False) -> dict:
        """The actor's status (RUNNING, BACKOFF, FAILED), last error, moved position."""
        await self._executor._ensure_started()
        return self._triggers.realtime.report((namespace, flow_id, trigger_id), generation,
                                              status, error, position, set_position)

    # ------------------------------------------------------------------ trigger API
    async def triggers(self, namespace: str | None = None, flow_id: str | None = None,
                       q: str | None = None, page: int = 1, size: int = 25) -> dict:
        """Triggers of deployed flows, in Kestra's shape: ``{results: [{abstractTrigger,
        triggerContext}], total}``. ``namespace`` also matches its children; ``q`` any part
        of the namespace, flow id or trigger id."""
        await self._executor._ensure_started()
        found = []
        for key in sorted(self._triggers.entries):
            ns, fid, _ = key
            if namespace is not None and ns != namespace and not ns.startswith(namespace + "."):
                continue
            if flow_id is not None and fid != flow_id:
                continue
            if q and not any(q.lower() in part.lower() for part in key):
                continue
            found.append(self._trigger_view(key))
        start = (max(page, 1) - 1) * size
        return {"results": found[start:start + size], "total": len(found)}

    async def trigger(self, namespace: str, flow_id: str, trigger_id: str) -> dict:
        await self._executor._ensure_started()
        return self._trigger_view(self._trigger_key(namespace, flow_id, trigger_id))

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str,
                                  enabled: bool) -> dict:
        """Enable or disable a trigger (persisted). A schedule enabled again starts from
        now: the ticks it missed while disabled are not owed."""
        from kray.executor_store import Conflict
        await self._executor._ensure_started()
        runner = self._triggers
        key = self._trigger_key(namespace, flow_id, trigger_id)
        entry, state = runner.entries[key], runner.states[key]
        if enabled and (entry.trigger.disabled or entry.flow_disabled):
            raise Conflict(f"trigger {trigger_id} is disabled in the flow's source; change "
                           "the flow to enable it")
        async with runner.locks[key]:
            if state.disabled == enabled:
                state.disabled = not enabled
                if enabled:
                    now = now_utc()
                    state.data.pop("stoppedBy", None)
                    runner.since[key] = now
                    if isinstance(entry.trigger, ScheduleTrigger):
                        state.watermark = now
                await runner.save(state)
        runner.cancel(key)
        runner.resume(key)
        return self._trigger_view(key)

    async def backfill(self, namespace: str, flow_id: str, trigger_id: str,
                       start: datetime | str, end: datetime | str | None = None,
                       inputs: dict[str, Any] | None = None,
                       labels: dict[str, str] | None = None) -> dict:
        """One execution per tick in ``[start, end)`` (``end``: now at most), each exactly
        once, even across restarts: a tick that already has its execution is skipped.
        Bounds without an offset are read on the schedule's clock."""
        from kray.executor_store import Conflict, RequestError
        await self._executor._ensure_started()
        runner = self._triggers
        key = self._trigger_key(namespace, flow_id, trigger_id)
        trigger = runner.entries[key].trigger
        if not isinstance(trigger, ScheduleTrigger):
            raise RequestError(f"trigger {trigger_id} is a {trigger.kind} trigger: only "
                               "Schedule triggers can be backfilled", "triggerId")
        now = now_utc()
        first = _moment(start, trigger.schedule.zone, "backfill.start")
        last = min(_moment(end, trigger.schedule.zone, "backfill.end"), now) \
            if end is not None else now
        if first >= last:
            raise RequestError("a backfill's start must be before its end, in the past",
                               "backfill.start")
        state = runner.states[key]
        async with runner.locks[key]:
            if state.data.get("backfill"):
                raise Conflict(f"trigger {trigger_id} already has a backfill; delete it first")
            state.data["backfill"] = {
                "start": first.isoformat(), "end": last.isoformat(),
                "inputs": dict(inputs or {}),
                "labels": {str(k): str(v) for k, v in (labels or {}).items()},
                "paused": False, "last": None, "executions": 0, "created": now.isoformat()}
            await runner.save(state)
        runner.resume(key)
        return self._trigger_view(key)

    async def set_backfill_paused(self, namespace: str, flow_id: str, trigger_id: str,
                                  paused: bool) -> dict:
        await self._executor._ensure_started()
        runner = self._triggers
        key = self._trigger_key(namespace, flow_id, trigger_id)
        async with runner.locks[key]:
            self._backfill_of(key)["paused"] = paused
            await runner.save(runner.states[key])
        if not paused:
            runner.resume(key)
        return self._trigger_view(key)

    async def delete_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> dict:
        await self._executor._ensure_started()
        runner = self._triggers
        key = self._trigger_key(namespace, flow_id, trigger_id)
        async with runner.locks[key]:
            self._backfill_of(key)
            runner.states[key].data.pop("backfill")
            await runner.save(runner.states[key])
        return self._trigger_view(key)

    # ------------------------------------------------------------------ helpers
    def _trigger_key(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerKey:
        from kray.executor_store import NotFound
        key = (namespace, flow_id, trigger_id)
        if key not in self._triggers.entries:
            raise NotFound(f"no trigger {trigger_id} in flow {namespace}/{flow_id}")
        return key

    def _backfill_of(self, key: TriggerKey) -> dict:
        from kray.executor_store import Conflict
        backfill = self._triggers.states[key].data.get("backfill")
        if not backfill:
            raise Conflict(f"trigger {key[2]} has no backfill")
        return backfill  # type: ignore[no-any-return]

    def _trigger_view(self, key: TriggerKey) -> dict:
        runner = self._triggers
        context = runner.states[key].to_dict()
        context["disabled"] = runner.off(key)
        if isinstance(runner.entries[key].trigger, EventTrigger):
            context.update(runner.realtime.view(key))
        return {"abstractTrigger": runner.entries[key].trigger.model_dump(
                    mode="json", by_alias=True, exclude_none=True),
                "triggerContext": context}


def _moment(value: datetime | str, zone: Any, field: str) -> datetime:
    """A backfill bound, ISO-8601 or a datetime; without an offset, on the schedule's clock."""
    from kray.executor_store import RequestError
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RequestError(f"'{value}' is not an ISO-8601 date", field) from None
    moment = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return moment.astimezone(UTC)


__all__ = ["SchedulerMixin"]
