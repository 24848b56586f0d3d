"""What every engine runner shares; standard library only (it runs in each engine's venv).

A runner is a long-lived process in its engine's virtual environment. It reads one JSON
command a line on stdin and answers one JSON line on the private channel set up by
``serve``: the engines' own prints and logs go to stderr (the harness's log file), never
into the answers.

Commands: ``{"op": "setup"}`` (start what the engine needs, answer its version),
``{"op": "run", "workload": NAME, "engine": VARIANT}`` (one timed run),
``{"op": "api", "engine": VARIANT, "rates": [...], "step_s": S}`` (the HTTP load test),
``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

# The workloads (names and sizes are the same in every runner).
CHAIN_LIGHT, FIB_LIGHT = 40, 10
CHAIN_HEAVY, FIB_HEAVY = 10, 33
FANOUT = 200
FOREACH = 100
WORKLOADS = ("chain40-light", "chain10-heavy", "fanout", "foreach100")


def fibo(n: int) -> int:
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


FIBO_SOURCE = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n"


def compute_seconds(n: int = FIB_HEAVY, repeat: int = 3) -> float:
    """The median time of ``fibo(n)`` in this interpreter: the compute a heavy task does."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fibo(n)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def result(wall: float, spans: list[tuple[float, float]], *, sequential: bool,
           tasks_expected: int, engine_start: float | None = None,
           engine_end: float | None = None, **extra: Any) -> dict[str, Any]:
    """One run's figures from the client's wall time and the engine's recorded task times
    (epoch seconds). ``sequential``: check that no task started before the previous ended
    (ordered by start time; 1 ms of clock slack)."""
    spans = sorted(spans)
    overlaps = 0
    if sequential:
        for (_, prev_end), (start, _) in zip(spans, spans[1:]):
            if start < prev_end - 0.001:
                overlaps += 1
    span = (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else None
    busy = sum(e - s for s, e in spans)
    out = {"wall": wall, "span": span, "tasks": len(spans), "tasks_expected": tasks_expected,
           "busy": busy, "overlaps": overlaps if sequential else None,
           "engine_duration": (engine_end - engine_start)
           if engine_start is not None and engine_end is not None else None}
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------- load test
def load_test(trigger: Callable[[], Any], wait: Callable[[Any], None], rates: list[float],
              step_s: float, limit_s: float = 1.0, max_wait: float = 60.0,
              threads: int = 256) -> dict[str, Any]:
    """Open-loop load: at each rate, start ``rate * step_s`` executions evenly spaced
    (``trigger`` returns a handle once the engine accepted it; ``wait(handle)`` returns when
    it ended). Latency: from the trigger call to the end seen by the client. Stops after
    the first rate whose p95 passes ``limit_s``."""
    steps = []
    warm = []
    for _ in range(3):  # a few sequential executions first: caches, connections, imports
        t0 = time.perf_counter()
        wait(trigger())
        warm.append(time.perf_counter() - t0)
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for rate in rates:
            count = max(3, int(round(rate * step_s)))
            latencies: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()

            def one() -> None:
                t0 = time.perf_counter()
                try:
                    wait(trigger())
                    took = time.perf_counter() - t0
                    with lock:
                        latencies.append(took)
                except Exception as e:  # noqa: BLE001 - a failed request is data
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}"[:300])

            start = time.perf_counter()
            futures = []
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(one))
            offered = time.perf_counter() - start
            deadline = time.perf_counter() + max_wait
            for f in futures:
                try:
                    f.result(timeout=max(0.0, deadline - time.perf_counter()))
                except Exception:  # noqa: BLE001 - counted below as unfinished
                    pass
            done_in = time.perf_counter() - start
            finished = len(latencies)
            unfinished = count - finished - len(errors)
            lat = sorted(latencies) + [max_wait] * (count - finished)  # failures count as slow
            p50 = lat[len(lat) // 2]
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
            steps.append({"rate": rate, "count": count, "ok": finished, "errors": len(errors),
                          "unfinished": unfinished, "first_error": errors[0] if errors else None,
                          "p50": p50, "p95": p95, "max": lat[-1],
                          "offered_s": offered, "achieved_rate": finished / done_in})
            if p95 > limit_s:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    passed = [s for s in steps if s["p95"] <= limit_s and not s["errors"]]
    return {"steps": steps, "warmup_latencies": warm,
            "max_rate_p95_under_1s": max((s["rate"] for s in passed), default=0)}


# ---------------------------------------------------------------------------------- serving
def serve(handlers: dict[str, Callable[[dict], Any]]) -> None:
    """Answer commands until ``quit``. Replies go to a private copy of stdout; fd 1 then
    points at stderr so that libraries printing to stdout cannot corrupt the channel."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        op = command.get("op")
        if op == "quit":
            channel.write(json.dumps({"ok": True}) + "\n")
            break
        try:
            reply = {"ok": True, "value": handlers[op](command)}
        except BaseException as e:  # noqa: BLE001 - reported to the harness, which goes on
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}
        channel.write(json.dumps(reply, default=str) + "\n")
        channel.flush()
    cleanup = handlers.get("cleanup")
    if cleanup is not None:
        cleanup({})


def epoch(value: Any) -> float:
    """An ISO-8601 string or a datetime as epoch seconds."""
    from datetime import datetime
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()
