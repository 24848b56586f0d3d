"""Where kray's time goes: py-spy on the executor actor (``ray::ExecutorService``) while the
kray runner repeats a workload (for api-throughput: 5 s of executions created through the
actor at ``API_RATE`` a second), folded into the functions that take the most samples.

py-spy counts only samples where the process was doing something (no idle waits), so the
shares are of the executor's busy time. The raw folded stacks are kept beside the results
(``profile-<workload>.txt``) for a flame graph.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
RUNS = 3
API_RATE = 50  # executions/s for the api-throughput profile


def record(runner: Any, pid: int, workload: str, path: Path) -> dict:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return {"error": "py-spy is not installed"}
    raw = path.with_suffix(".txt")
    proc = subprocess.Popen([py_spy, "record", "-p", str(pid), "-o", str(raw), "--format",
                             "raw", "-r", "200", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    walls = []
    started = time.monotonic()
    try:
        if workload == "api-throughput":  # the actor path at a rate that saturates it
            answer = runner.ask({"op": "api", "engine": "kray-actor", "rates": [API_RATE],
                                 "step_s": 5}, 300)
            if answer.get("ok"):
                walls = [st["p95"] for st in answer["value"]["steps"]]
        else:
            for _ in range(RUNS):
                answer = runner.ask({"op": "run", "workload": workload, "engine": "kray"},
                                    300)
                if answer.get("ok"):
                    walls.append(answer["value"]["wall"])
    finally:
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if not raw.exists():
        return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}
    summary = summarize(raw.read_text())
    summary.update(runs=len(walls), walls=walls, elapsed=elapsed, file=raw.name,
                   sample_rate=200)
    return summary


def _frame(text: str) -> tuple[str, str]:
    m = FRAME.match(text.strip())
    if not m:
        return text.strip(), ""
    file = m["file"]
    for marker in ("site-packages/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return m["func"], file


# Leaf frames where a thread waits rather than works (py-spy cannot always tell: Ray's
# actor loop and the event loop's selector wait inside C calls).
IDLE = ("Worker.main_loop", "EpollSelector.select", "_worker", "Condition.wait",
        "Event.wait", "Thread.join", "_wait_for_tstate_lock", "Queue.get", "sleep")
OWN = ("kray/", "storage/", "plugins/", "api/")


def summarize(folded: str, top: int = 25) -> dict:
    """Top functions by own samples, and kray's own functions by samples with them on the
    stack; idle waits are left out."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        if not frames or frames[-1][0] in IDLE:
            idle += n
            continue
        samples += n
        own[f"{frames[-1][0]} ({frames[-1][1]})"] += n
        for func, file in set(frames):
            if file.startswith(OWN):
                total[f"{func} ({file})"] += n
    share = (lambda n: round(100.0 * n / samples, 1)) if samples else (lambda n: 0.0)
    return {"samples": samples, "idle_samples": idle,
            "self": [(f, share(n)) for f, n in own.most_common(top)],
            "total": [(f, share(n)) for f, n in total.most_common(top)]}
