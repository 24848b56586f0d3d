from __future__ import annotations

import os
import time

import psutil


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_dead(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` for all to die."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def read_pids(path: os.PathLike[str] | str) -> list[int]:
    with open(path) as f:
        return [int(x) for x in f.read().split()]
