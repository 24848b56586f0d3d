"""RESULTS.md and one PNG chart per workload, from a results.json of ``python -m benchmarks run``.

    python benchmarks/report.py [RESULTS_JSON ...]  (default: benchmarks/out/latest.json)

Several files are merged, a later one's engine on a workload replacing an earlier one's.

Standard library, plus matplotlib for the charts (the harness runs this in its ``report``
venv; without matplotlib the tables are written and the charts left out, and said so).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHARTS = HERE / "charts"
NOTES = HERE / "NOTES.md"

TITLES = {
    "chain40-light": "chain40-light: 40 sequential tasks, each fibo(10)",
    "chain10-heavy": "chain10-heavy: 10 sequential tasks, each fibo(33)",
    "fanout": "fanout: 1 → 200 → 1 tiny tasks",
    "foreach100": "foreach100: a 100-item loop, one item at a time",
}
PER_TASK = {"chain40-light": 40, "chain10-heavy": 10, "foreach100": 100}

# Published elsewhere, on other hardware: the figures quoted in issue 7, not reproduced here.
PUBLISHED = [
    ("chain40-light", "Prefect 3 (in-process)", "3.4 ms per task", "published by Prefect"),
    ("chain40-light", "Windmill (fastest)", "9.8 ms per task", "Windmill's comparison, 2026"),
    ("chain40-light", "Kestra", "87 ms per task", "Windmill's comparison, 2026"),
    ("chain40-light", "Airflow (tuned)", "228 ms per task", "Windmill's comparison, 2026"),
    ("foreach100", "Kestra", "about 8 to 11 s", "Kestra's benchmark page"),
]

TARGETS = [
    ("chain40-light", "under 5 ms per task (kray)"),
    ("fanout", "within 3x of raw Ray"),
    ("api-throughput", "100 executions/s at p95 under 250 ms"),
    ("foreach100", "under 1 s"),
]


def med(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def version(info: dict) -> str:
    versions = info.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "-"


def summarize(workload: str, state: dict) -> dict:
    runs = state.get("runs") or []
    out = {"n": len(runs), "wall": med([r["wall"] for r in runs]),
           "span": med([r.get("span") for r in runs]),
           "engine_duration": med([r.get("engine_duration") for r in runs]),
           "compute": med([r.get("compute") for r in runs]),
           "overlaps": sum(r.get("overlaps") or 0 for r in runs)
           if runs and runs[0].get("overlaps") is not None else None,
           "missing": sum(1 for r in runs if r["tasks"] < r["tasks_expected"]),
           "error": state.get("error"), "timed_out": state.get("timed_out"),
           "cold_only": state.get("cold_only"),
           "warmup_wall": med([r["wall"] for r in state.get("warmup") or []])}
    return out


def workload_section(workload: str, states: dict, engines: dict, options: dict,
                     chart: str | None) -> list[str]:
    rows = {name: summarize(workload, s) for name, s in states.items()}
    kray, ray = rows.get("kray", {}), rows.get("ray", {})
    heavy = workload == "chain10-heavy"
    baseline = None
    if heavy:  # the fastest 10 × fibo(33) measured in any runner, after any run
        baseline = min((r["compute"] for s in states.values() for r in s.get("runs") or []
                        if r.get("compute")), default=None)
    per = PER_TASK.get(workload)
    lines = [f"### {TITLES[workload]}", ""]
    head = ["engine", "version", "runs", "tasks span (engine-recorded)"]
    if per:
        head.append("per task")
    head += ["wall (client)"]
    if heavy:
        head += ["overhead (wall − compute)", "overhead per task"]
    head += ["wall vs kray", "wall vs raw Ray", "span vs kray", "notes"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        info = engines.get(name, {})
        notes = []
        if r["error"]:
            notes.append(("timed out: " if r["timed_out"] else "error: ") + str(r["error"])[:300])
        if r["overlaps"]:
            notes.append(f"**{r['overlaps']} overlapping sequential tasks**")
        elif r["overlaps"] == 0:
            notes.append("no overlap")
        if r["missing"]:
            notes.append(f"{r['missing']} runs with task times missing")
        if r["cold_only"]:
            notes.append("1 run, no warm-up (slower than half the time budget)")
        elif 0 < r["n"] < options.get("runs", 5):
            notes.append(f"{r['n']} of {options.get('runs', 5)} runs (time budget)")
        if r["n"] == 0 and r["warmup_wall"] is not None:
            notes.append(f"warm-up only: {ms(r['warmup_wall'])}")
        cells = [info.get("label", name), version(info), str(r["n"]), ms(r["span"])]
        if per:
            cells.append(ms(r["span"] / per) if r["span"] is not None else "-")
        cells.append(ms(r["wall"]))
        if heavy:
            over = r["wall"] - baseline if r["wall"] is not None and baseline else None
            cells += [ms(over), ms(over / 10) if over is not None else "-"]
        cells += [ratio(r["wall"], kray.get("wall")), ratio(r["wall"], ray.get("wall")),
                  ratio(r["span"], kray.get("span")), "; ".join(notes)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if heavy and baseline:
        lines += [f"Compute: 10 × fibo(33) took {ms(baseline)} at best, measured in CPython "
                  "3.11 inside each runner after each run (the fastest of all those "
                  "measurements is the baseline: on a loaded machine any single one is noisy). "
                  "Overhead is the median wall time above it; it also carries the machine's "
                  "noise, equally for every engine since the runs alternate.", ""]
    if chart:
        lines += [f"![{workload}]({chart})", ""]
    return lines


def api_section(states: dict, engines: dict) -> list[str]:
    lines = ["### api-throughput: a 2-task flow triggered at rising rates until p95 passes 1 s",
             "", "| engine | version | highest rate with p95 ≤ 1 s | per rate: p50 / p95 "
             "(finished/started) | how |", "|---|---|---|---|---|"]
    for name, s in states.items():
        info = engines.get(name, {})
        if "error" in s and "steps" not in s:
            lines.append(f"| {info.get('label', name)} | {version(info)} | - | "
                         f"error: {str(s['error'])[:300]} | |")
            continue
        steps = "; ".join(f"{st['rate']:g}/s: {ms(st['p50'])} / {ms(st['p95'])} "
                          f"({st['ok']}/{st['count']})" for st in s["steps"])
        lines.append(f"| {info.get('label', name)} | {version(info)} | "
                     f"{s['max_rate_p95_under_1s']:g}/s | {steps} | {s.get('via', '')} |")
    lines.append("")
    return lines


def chart(workload: str, states: dict, engines: dict) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [(engines.get(n, {}).get("label", n), summarize(workload, s))
            for n, s in states.items()]
    rows = [(label, r) for label, r in rows if r["wall"] is not None]
    if not rows:
        return None
    labels = [label for label, _ in rows]
    walls = [r["wall"] for _, r in rows]
    spans = [r["span"] or 0 for _, r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.4))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], walls, height=0.4, label="wall (client)", color="#4c72b0")
    ax.barh([i - 0.2 for i in y], spans, height=0.4, label="tasks span (engine-recorded)",
            color="#dd8452")
    for i, w in enumerate(walls):
        ax.text(w, i + 0.2, f" {ms(w)}", va="center", fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale), median; lower is better")
    ax.set_title(TITLES[workload], fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    CHARTS.mkdir(exist_ok=True)
    path = CHARTS / f"{workload}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"charts/{workload}.png"


def api_chart(states: dict, engines: dict) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    drawn = False
    for name, s in states.items():
        if not s.get("steps"):
            continue
        ax.plot([st["rate"] for st in s["steps"]], [st["p95"] for st in s["steps"]],
                marker="o", label=engines.get(name, {}).get("label", name))
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.axhline(0.25, color="green", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (executions/s)")
    ax.set_ylabel("p95 latency (s)")
    ax.set_title("api-throughput: p95 from trigger to end seen by the client", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    CHARTS.mkdir(exist_ok=True)
    fig.savefig(CHARTS / "api-throughput.png", dpi=110)
    plt.close(fig)
    return "charts/api-throughput.png"


def profile_section(profiles: dict) -> list[str]:
    if not profiles:
        return []
    lines = ["## Where kray's executor spends its time (py-spy)", "",
             "py-spy (`record --nonblocking -r 200`) on the executor actor's process while kray "
             "ran each workload three more times (api-throughput: 5 s of executions created "
             "through the actor at 50/s). Shares are of the samples in which the executor was "
             "busy: samples whose innermost frame is a wait (Ray's actor loop, the event "
             "loop's selector, idle thread-pool workers) are left out. Left: kray's own "
             "functions with everything they call; right: the innermost frames. The folded "
             "stacks are in `benchmarks/out/<run>/profile-*.txt`.", ""]
    for workload, p in profiles.items():
        if "error" in p:
            lines += [f"**{workload}**: profile failed: {p['error']}", ""]
            continue
        what = ("p95 at 50/s: " if workload == "api-throughput" else "runs: ") + \
            ", ".join(ms(w) for w in p["walls"])
        lines += [f"**{workload}** ({p['samples']} busy samples over {p['elapsed']:.1f} s, "
                  f"{what})", "",
                  "| on the stack (inclusive) | % | own time (self) | % |", "|---|---|---|---|"]
        for i in range(12):
            t = p["total"][i] if i < len(p["total"]) else ("", "")
            s = p["self"][i] if i < len(p["self"]) else ("", "")
            lines.append(f"| `{t[0]}` | {t[1]} | `{s[0]}` | {s[1]} |")
        lines.append("")
    return lines


def targets_section(results: dict) -> list[str]:
    w = results["workloads"]
    lines = ["## Targets (issue 7)", "", "| workload | target | kray measured | met |",
             "|---|---|---|---|"]
    for workload, target in TARGETS:
        measured, met = "-", "-"
        if workload == "api-throughput":
            s = (w.get(workload) or {}).get("kray") or {}
            steps = [st for st in s.get("steps", []) if st["rate"] >= 100]
            if s.get("steps"):
                at100 = steps[0] if steps else None
                measured = (f"p95 {ms(at100['p95'])} at {at100['rate']:g}/s" if at100 else
                            f"stopped at {s['steps'][-1]['rate']:g}/s (p95 "
                            f"{ms(s['steps'][-1]['p95'])})")
                met = "yes" if at100 and at100["p95"] < 0.25 and not at100["errors"] else "no"
        elif workload in w:
            kray = summarize(workload, w[workload].get("kray", {}))
            ray = summarize(workload, w[workload].get("ray", {}))
            if workload == "chain40-light" and kray["wall"] is not None:
                per_wall, per_span = kray["wall"] / 40, (kray["span"] or 0) / 40
                measured = f"{ms(per_wall)} per task (wall), {ms(per_span)} (span)"
                met = "yes" if per_wall < 0.005 else ("span only" if per_span < 0.005 else "no")
            elif workload == "fanout" and kray["wall"] and ray["wall"]:
                measured = f"{kray['wall'] / ray['wall']:.1f}x raw Ray (wall)"
                met = "yes" if kray["wall"] / ray["wall"] <= 3 else "no"
            elif workload == "foreach100" and kray["wall"] is not None:
                measured = f"{ms(kray['wall'])} wall, {ms(kray['span'])} span"
                met = "yes" if kray["wall"] < 1 else ("span only" if (kray["span"] or 9) < 1
                                                      else "no")
        lines.append(f"| {workload} | {target} | {measured} | {met} |")
    return lines + [""]


def render(results: dict) -> str:
    m, o, engines = results["machine"], results["options"], results["engines"]
    limits = []
    for opts in [o, *results.get("runs_merged", [])]:
        text = f"{opts['timeout_s']:.0f} s a run and {opts['budget_s']:.0f} s an engine"
        if text not in limits:
            limits.append(text)
    lines = ["# Benchmarks: kray side by side with raw Ray, Prefect, Dagster and Airflow", "",
             "Generated by `python -m benchmarks run --all` (tables and charts: "
             "`benchmarks/report.py`); do not edit by hand, edit `benchmarks/NOTES.md`.", "",
             f"* **Date**: {results['date']}",
             f"* **Machine**: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory')}, "
             f"{m.get('os')}, Python {m.get('python')}. **A shared 2-core VM**: other "
             "engineers' test suites ran at the same time (load average "
             f"{_load(m.get('loadavg_at_start'))} at the start, "
             f"{_load(m.get('loadavg_at_end'))} at the end), so absolute figures are noisy "
             "and slower than on a quiet machine; the runs are interleaved to spread that "
             "noise evenly over the engines.",
             f"* **Method**: for each workload the engines take turns run by run "
             f"({o['warmup']} warm-up, then up to {o['runs']} measured runs; figures are "
             f"medians). Time limits ({' / '.join(limits)} per workload, by harness "
             "invocation) give a slow engine fewer runs (the table says how many) and stop "
             "a run past the limit. Engines not on turn are frozen (SIGSTOP) so that their "
             "background services cost the others nothing.",
             "* **Figures**: *tasks span* is the engine's own record, first task start to last "
             "task end (kray: attempts as the executor recorded them; Prefect: task runs on "
             "its server; Dagster: STEP_START/STEP_SUCCESS events; Airflow: task instances; "
             "raw Ray: times taken inside the tasks). *wall* is what a client sees, from the "
             "trigger call to seeing the run ended, in the same process. Sequential workloads "
             "are checked for overlapping tasks.",
             "* kray runs with state persisted (DuckDB group commit, executor defaults) on an "
             "embedded Ray on 127.0.0.1; every peer in its own virtual environment "
             "(`benchmarks/.venvs/`), pinned in `benchmarks/envs.py`.", ""]
    lines += targets_section(results)
    lines += ["## Results", ""]
    for name, info in engines.items():
        if info.get("error"):
            lines.append(f"* **{info.get('label', name)}** did not run: {info['error'][:600]}")
    lines.append("")
    for workload in TITLES:
        states = results["workloads"].get(workload)
        if states:
            lines += workload_section(workload, states, engines, o,
                                      chart(workload, states, engines))
    api = results["workloads"].get("api-throughput")
    if api:
        lines += api_section(api, engines)
        c = api_chart(api, engines)
        if c:
            lines += [f"![api-throughput]({c})", ""]
    rc = results.get("render_cost")
    if rc:
        lines += [f"kray's chain40-light computes fibo(10) in a template on the worker "
                  f"(`Return`): {rc['fibo10_template_ms']:.2f} ms per render, against "
                  f"{rc['fibo10_python_ms']:.3f} ms for Python's recursive function in the "
                  "peers' tasks.", ""]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    lines += profile_section(results.get("profiles") or {})
    lines += ["## Published figures (measured elsewhere on other hardware)", "",
              "Not reproduced here; the figures as issue 7 quotes them, for scale only.", "",
              "| workload | engine | published figure | source |", "|---|---|---|---|"]
    lines += [f"| {w} | {e} | {f} | {s} |" for w, e, f, s in PUBLISHED]
    lines.append("")
    return "\n".join(lines)


def _load(value) -> str:
    return "/".join(f"{v:.1f}" for v in value) if value else "?"


def merge(paths: list[Path]) -> dict:
    """Several runs' results as one: a later file's engine on a workload (or profile)
    replaces an earlier one's; the machine notes keep the first start and the last end."""
    merged: dict = {}
    dates = []
    for path in paths:
        results = json.loads(path.read_text())
        dates.append(results["date"])
        if not merged:
            merged = results
            continue
        for key in ("engines", "profiles"):
            merged.setdefault(key, {}).update(results.get(key) or {})
        for workload, states in (results.get("workloads") or {}).items():
            merged["workloads"].setdefault(workload, {}).update(states)
        if results.get("render_cost"):
            merged["render_cost"] = results["render_cost"]
        merged["machine"]["loadavg_at_end"] = results["machine"].get("loadavg_at_end")
        merged.setdefault("runs_merged", []).append(results["options"])
    if len(dates) > 1:
        merged["date"] = f"{dates[0]} to {dates[-1]} ({len(dates)} runs of the harness)"
    return merged


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [HERE / "out" / "latest.json"]
    results = merge(paths)
    (HERE / "RESULTS.md").write_text(render(results))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
