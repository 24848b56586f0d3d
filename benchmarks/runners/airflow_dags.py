"""The Airflow DAGs of the benchmark (copied into the instance's dags folder)."""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def fibo(n: int) -> int:
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


def chain(dag_id: str, size: int, n: int) -> None:
    @dag(dag_id=dag_id, schedule=None, start_date=START, catchup=False)
    def build():
        prev = None
        for i in range(size):
            @task(task_id=f"t{i}")
            def step() -> int:
                return fibo(n)
            current = step()
            if prev is not None:
                prev >> current
            prev = current
    build()


chain("bench_chain40_light", 40, 10)
chain("bench_chain10_heavy", 10, 33)


@task
def first() -> int:
    return 0


@task
def leaf(x: int) -> int:
    return x


@task
def last() -> int:
    return 1


@dag(dag_id="bench_fanout", schedule=None, start_date=START, catchup=False)
def fanout():
    first() >> leaf.expand(x=list(range(200))) >> last()


fanout()


@dag(dag_id="bench_foreach100", schedule=None, start_date=START, catchup=False)
def foreach100():
    leaf.override(max_active_tis_per_dagrun=1).expand(x=list(range(100)))


foreach100()


@task
def one() -> str:
    return "one"


@task
def two(value: str) -> str:
    return value + " two"


@dag(dag_id="bench_api", schedule=None, start_date=START, catchup=False)
def api():
    two(one())


api()
