"""Small named rules the core applies, each with the race or mistake it prevents."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kray.engine.state import State

if TYPE_CHECKING:
    from kray.flow.model import Concurrency
    from kray.task import Retry


def retry_delay(retry: Retry, attempt: int, seed: str) -> timedelta:
    """Delay before attempt ``attempt + 1``.

    The random kind draws from a generator seeded by the task run and attempt, so the core stays
    deterministic: a replayed decision schedules the same instant.
    """
    zero = timedelta(0)
    if retry.type == "constant":
        return retry.interval or zero
    if retry.type == "exponential":
        base = retry.interval or timedelta(seconds=1)
        factor = retry.delay_factor if retry.delay_factor is not None else 2.0
        delay = base * (factor ** (attempt - 1))
        return min(delay, retry.max_interval) if retry.max_interval else delay
    low = retry.min_interval or zero
    high = retry.max_interval or low
    rng = random.Random(f"{seed}:{attempt}")
    return low + (high - low) * rng.random()


def may_retry(retry: Retry | None, attempts_done: int, first_start: datetime, now: datetime) -> bool:
    """Another attempt is allowed while both ``maxAttempt`` (attempts in all, the first included)
    and ``maxDuration`` (since the first attempt started) allow it. With neither set, Kestra
    retries forever; we do too, but only when the user asked for a retry at all."""
    if retry is None:
        return False
    if retry.max_attempt is not None and attempts_done >= retry.max_attempt:
        return False
    if retry.max_duration is not None and now - first_start >= retry.max_duration:
        return False
    return True


def admit(concurrency: Concurrency | None, running: int) -> State:
    """The state a new execution starts in, given how many of its flow's executions run.

    Checked by the executor shell at creation, before the execution is durable, so two
    executions can never both take the last slot.
    """
    if concurrency is None or running < concurrency.limit:
        return State.RUNNING
    return {"QUEUE": State.QUEUED, "CANCEL": State.CANCELLED, "FAIL": State.FAILED}[
        concurrency.behavior.value]
