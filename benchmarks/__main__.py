"""kray side by side with raw Ray, Prefect 3, Dagster and Airflow 3, in one run.

    python -m benchmarks run --all                 every workload, every engine
    python -m benchmarks run --workload chain40-light --engines kray,ray,prefect --runs 5
    python -m benchmarks report [RESULTS_JSON ...] RESULTS.md and charts again, from saved runs

``run`` installs each peer into its own virtual environment under ``benchmarks/.venvs/``
(pinned, first time only), writes raw results and logs to ``benchmarks/out/<UTC stamp>/``,
then ``benchmarks/RESULTS.md`` and ``benchmarks/charts/*.png``. The older kray-vs-raw-Ray
quick check stays at ``python -m benchmarks.engine``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks import envs, harness


def _list(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return items


def report(results: list[Path]) -> int:
    error = envs.ensure_venv("report", harness.log)
    python = envs.python_of(None if error else "report")
    if error:
        harness.log(f"no charts: {error}")
    args = [str(python), str(envs.HERE / "report.py"), *map(str, results)]
    return subprocess.call(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run workloads on engines, then write RESULTS.md")
    run.add_argument("--all", action="store_true", help="every workload and every engine")
    run.add_argument("--workload", action="append", default=[],
                     help=f"repeatable or comma-separated: {', '.join(harness.WORKLOADS)}")
    run.add_argument("--engines", default=",".join(envs.ENGINES),
                     help=f"comma-separated (default all): {', '.join(envs.ENGINES)}")
    run.add_argument("--runs", type=int, default=5, help="measured runs (median)")
    run.add_argument("--warmup", type=int, default=1)
    run.add_argument("--timeout", type=float, default=200.0, help="seconds, one run")
    run.add_argument("--budget", type=float, default=240.0,
                     help="seconds per engine and workload; fewer runs past it (at least 1)")
    run.add_argument("--api-rates", default="1,2,5,10,20,50,100,200",
                     help="executions/s, in order; stops after p95 passes 1 s")
    run.add_argument("--api-step", type=float, default=5.0, help="seconds at each rate")
    run.add_argument("--no-profile", action="store_true", help="skip py-spy on kray")
    run.add_argument("--no-report", action="store_true", help="results.json only")
    rep = sub.add_parser("report", help="rewrite RESULTS.md and charts from a results.json")
    rep.add_argument("results", nargs="*", type=Path,
                     help="results.json files, merged in order (default: the last run's)")
    args = parser.parse_args(argv)

    if args.command == "report":
        return report(args.results)
    workloads = list(harness.WORKLOADS) if args.all or not args.workload else \
        _list(",".join(args.workload), harness.WORKLOADS, "workload")
    engines = list(envs.ENGINES) if args.all else _list(args.engines, tuple(envs.ENGINES),
                                                        "engine")
    options = harness.Options(
        workloads=workloads, engines=engines, runs=args.runs, warmup=args.warmup,
        timeout=args.timeout, budget=args.budget,
        api_rates=[float(r) for r in args.api_rates.split(",")], api_step=args.api_step,
        profile=not args.no_profile)
    path = harness.run(options)
    harness.log(f"results: {path}")
    return 0 if args.no_report else report([path])


if __name__ == "__main__":
    sys.exit(main())
