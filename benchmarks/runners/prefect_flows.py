"""The Prefect flows of the benchmark (a module: ``flow.serve()`` imports it by path)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prefect import flow, task  # noqa: E402

import common  # noqa: E402


@task
def work(n: int, prev: object = None) -> int:
    return common.fibo(n)


@flow
def chain(size: int, n: int) -> None:
    prev = None
    for _ in range(size):
        prev = work(n, prev)


@flow
def fanout(width: int) -> None:
    first = work.submit(0)
    leaves = work.map([0] * width, wait_for=[first])
    work.submit(0, wait_for=leaves).result()


@flow
def foreach(count: int) -> None:
    for _ in range(count):
        work(0)


@task
def one() -> str:
    return "one"


@task
def two(value: str) -> str:
    return value + " two"


@flow(name="bench-api")
def api_flow() -> str:
    return two(one())


if __name__ == "__main__":
    api_flow.serve(name="bench-api")
