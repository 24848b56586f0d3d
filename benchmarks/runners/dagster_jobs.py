"""The Dagster jobs of the benchmark (module level: the multiprocess executor rebuilds them
in each step's process with ``reconstructable``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dagster import DynamicOut, DynamicOutput, In, Nothing, job, op  # noqa: E402

import common  # noqa: E402
from common import CHAIN_HEAVY, CHAIN_LIGHT, FANOUT, FIB_HEAVY, FIB_LIGHT, FOREACH  # noqa: E402


def _chain_job(name: str, size: int, n: int):
    ops = []
    for i in range(size):
        @op(name=f"t{i}", ins={"prev": In(Nothing)} if i else {})
        def step() -> int:
            return common.fibo(n)
        ops.append(step)

    @job(name=name)
    def chain():
        prev = None
        for step in ops:
            prev = step(prev) if prev is not None else step()
    return chain


chain40_light = _chain_job("chain40_light", CHAIN_LIGHT, FIB_LIGHT)
chain10_heavy = _chain_job("chain10_heavy", CHAIN_HEAVY, FIB_HEAVY)


def _items(count: int, name: str):
    @op(name=name, out=DynamicOut(int))
    def items():
        for i in range(count):
            yield DynamicOutput(i, mapping_key=str(i))
    return items


@op
def leaf(value: int) -> int:
    return value


@op
def last(values: list[int]) -> int:
    return len(values)


first = _items(FANOUT, "first")
loop_items = _items(FOREACH, "items")


@job
def fanout():
    last(first().map(leaf).collect())


@job
def foreach100():
    loop_items().map(leaf)


JOBS = {"chain40-light": chain40_light, "chain10-heavy": chain10_heavy, "fanout": fanout,
        "foreach100": foreach100}
