"""The side-by-side run: every selected engine on every selected workload, interleaved.

Each engine variant is served by a long-lived runner process in its own virtual environment
(``runners/``). For each workload the harness goes round the engines run by run (warm-up
first, then the measured runs, the order rotated every round), so that the noise of a shared
machine spreads over all of them. A runner that is not on turn is stopped with SIGSTOP (its
whole process tree: Airflow's scheduler, Prefect's server), so that no engine's idle
background work is charged to another; kray's runner is left running, since Ray's own
processes cannot be frozen safely.

Every run has a time limit (``--timeout``) and every engine a time budget per workload
(``--budget``): a slow engine gets fewer measured runs (at least one), and the tables say
how many. A runner that fails to install, start or run is recorded with its error.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import envs

WORKLOADS = ("chain40-light", "chain10-heavy", "fanout", "foreach100", "api-throughput")
OUT = envs.HERE / "out"
# Profiled on kray after the runs (py-spy on the executor): where orchestration is the cost.
PROFILED = ["chain40-light", "fanout", "foreach100", "api-throughput"]


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    order, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        order.append(p)
        todo.extend(children.get(p, []))
    return order


def _signal_tree(pid: int, sig: int) -> None:
    for p in _descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


@dataclass
class RunnerProcess:
    """One runner: JSON commands on stdin, one JSON answer a line on stdout."""

    spec: envs.Runner
    log_path: Path
    proc: subprocess.Popen | None = None
    setup: dict | None = None
    error: str | None = None
    paused: bool = False
    busy: bool = False  # a command was sent and not answered
    buffer: bytes = b""

    @property
    def pausable(self) -> bool:
        return self.spec.name != "kray"

    def start(self, timeout: float) -> None:
        python = envs.python_of(self.spec.venv)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("RAY_ADDRESS", None)  # the kray runner starts its own Ray on 127.0.0.1
        self.proc = subprocess.Popen(
            [str(python), str(envs.RUNNERS / self.spec.script), *self.spec.args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.log_path, "ab"), start_new_session=True, env=env,
            cwd=str(envs.HERE.parent))
        answer = self.ask({"op": "setup"}, timeout)
        if not answer.get("ok"):
            raise RuntimeError(answer.get("error"))
        self.setup = answer["value"]

    def ask(self, command: dict, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.resume()
        self.busy = True
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the runner exited (code {self.proc.wait()}); "
                                       f"see {self.log_path.name}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.busy = False
        return json.loads(line)

    def pause(self) -> None:
        if self.pausable and self.proc is not None and not self.paused \
                and self.proc.poll() is None:
            _signal_tree(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused and self.proc is not None:
            _signal_tree(self.proc.pid, signal.SIGCONT)
            self.paused = False

    def stop(self) -> None:
        """Ask the runner to clean up and quit; then end whatever is left of its tree."""
        if self.proc is None:
            return
        tree = _descendants(self.proc.pid)
        if self.proc.poll() is None and not self.busy:  # a busy one would answer too late
            try:
                self.ask({"op": "quit"}, 90)
                self.proc.wait(60)
            except Exception:  # noqa: BLE001 - ended below
                pass
        for sig in (signal.SIGCONT, signal.SIGTERM):
            for p in tree:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
        time.sleep(2)
        for p in tree:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self.proc = None
        self.buffer = b""
        self.busy = self.paused = False


@dataclass
class Options:
    workloads: list[str]
    engines: list[str]
    runs: int = 5
    warmup: int = 1
    timeout: float = 150.0
    budget: float = 300.0
    api_rates: list[float] = field(default_factory=lambda: [5, 10, 20, 50, 100, 200])
    api_step: float = 5.0
    profile: bool = True
    out: Path = OUT


class Harness:
    def __init__(self, options: Options):
        self.o = options
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.dir = options.out / self.stamp
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runners: dict[str, RunnerProcess] = {}
        self.results: dict[str, Any] = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "options": {
                "runs": options.runs, "warmup": options.warmup, "timeout_s": options.timeout,
                "budget_s": options.budget, "api_rates": options.api_rates,
                "api_step_s": options.api_step},
            "engines": {}, "workloads": {}, "profiles": {}}

    # ------------------------------------------------------------------ runners
    def _runner(self, engine: envs.Engine) -> RunnerProcess | None:
        spec = engine.runner
        runner = self.runners.get(spec.name)
        if runner is None:
            runner = self.runners[spec.name] = RunnerProcess(spec, self.dir / f"{spec.name}.log")
        if runner.error is not None:
            return None
        if runner.proc is None:
            if spec.venv is not None:
                runner.error = envs.ensure_venv(spec.venv, log)
                if runner.error:
                    log(f"{spec.name}: {runner.error}")
                    return None
            log(f"starting the {spec.name} runner")
            try:
                runner.start(timeout=900)
            except Exception as e:  # noqa: BLE001 - recorded, the others go on
                runner.error = f"start failed: {type(e).__name__}: {e}"
                log(f"{spec.name}: {runner.error}")
                runner.stop()
                return None
            log(f"{spec.name} ready: {runner.setup}")
        return runner

    def _engine_info(self, engine: envs.Engine, runner: RunnerProcess | None) -> None:
        info = self.results["engines"].setdefault(engine.name, {
            "label": engine.label, "note": engine.note})
        if runner is not None and runner.setup:
            info["versions"] = runner.setup.get("versions")
            info["python"] = runner.setup.get("python")
            info.pop("error", None)
        elif runner is not None or engine.runner.name in self.runners:
            info["error"] = self.runners[engine.runner.name].error

    def start_all(self) -> None:
        for name in self.o.engines:
            engine = envs.ENGINES[name]
            runner = self._runner(engine)
            self._engine_info(engine, runner)
            if runner is not None:
                runner.pause()

    # ------------------------------------------------------------------ workloads
    def run_workload(self, workload: str) -> None:
        engines = [envs.ENGINES[n] for n in self.o.engines
                   if workload in envs.ENGINES[n].workloads]
        state = {e.name: {"runs": [], "warmup": [], "used": 0.0, "done": False, "error": None,
                          "timed_out": False, "cold_only": False} for e in engines}
        rounds = self.o.warmup + self.o.runs
        log(f"== {workload}: {', '.join(e.name for e in engines)}")
        for i in range(rounds):
            order = engines[i % len(engines):] + engines[:i % len(engines)]
            for engine in order:
                s = state[engine.name]
                if s["done"]:
                    continue
                runner = self._runner(engine)
                self._engine_info(engine, runner)
                if runner is None:
                    s["done"], s["error"] = True, self.runners[engine.runner.name].error
                    continue
                t0 = time.monotonic()
                try:
                    answer = runner.ask({"op": "run", "workload": workload,
                                         "engine": engine.name}, self.o.timeout)
                except TimeoutError:
                    took = time.monotonic() - t0
                    log(f"{workload} {engine.name}: timed out after {took:.0f} s; "
                        f"restarting its runner")
                    s.update(done=True, timed_out=True,
                             error=f"a run took longer than the {self.o.timeout:.0f} s limit")
                    runner.stop()
                    continue
                except Exception as e:  # noqa: BLE001
                    s.update(done=True, error=f"{type(e).__name__}: {e}")
                    log(f"{workload} {engine.name}: {s['error']}")
                    runner.stop()
                    continue
                finally:
                    if runner.proc is not None:
                        runner.pause()
                took = time.monotonic() - t0
                s["used"] += took
                if not answer.get("ok"):
                    s.update(done=True, error=answer.get("error"))
                    log(f"{workload} {engine.name}: {s['error']}")
                    continue
                value = answer["value"]
                warm = i < self.o.warmup
                (s["warmup"] if warm else s["runs"]).append(value)
                log(f"{workload} {engine.name} {'warm-up' if warm else 'run'}: "
                    f"wall {value['wall']:.3f} s, span {_fmt(value.get('span'))} s, "
                    f"tasks {value['tasks']}/{value['tasks_expected']}")
                if warm and took > self.o.budget / 2:
                    # Too slow to afford a warm run after it: the cold run is the figure.
                    s["runs"].append(s["warmup"].pop())
                    s["cold_only"] = True
                    s["done"] = True
                if s["runs"] and s["used"] + took > self.o.budget:
                    s["done"] = True  # the budget is spent: fewer runs, said in the table
        self.results["workloads"][workload] = state
        self.save()

    def run_api(self) -> None:
        state = {}
        for name in self.o.engines:
            if name not in envs.API_ENGINES:
                continue
            engine = envs.ENGINES[name]
            runner = self._runner(engine)
            self._engine_info(engine, runner)
            if runner is None:
                state[name] = {"error": self.runners[engine.runner.name].error}
                continue
            log(f"== api-throughput: {name}")
            try:
                answer = runner.ask({"op": "api", "engine": name, "rates": self.o.api_rates,
                                     "step_s": self.o.api_step}, 900)
                state[name] = answer["value"] if answer.get("ok") else {
                    "error": answer.get("error")}
            except Exception as e:  # noqa: BLE001
                state[name] = {"error": f"{type(e).__name__}: {e}"}
                runner.stop()
            finally:
                if runner.proc is not None:
                    runner.pause()
            log(f"api-throughput {name}: {json.dumps(state[name])[:400]}")
        self.results["workloads"]["api-throughput"] = state
        self.save()

    # ------------------------------------------------------------------ profile
    def profile_kray(self, workloads: list[str]) -> None:
        """py-spy on the executor actor while kray runs each workload a few times."""
        from benchmarks import profile
        runner = self.runners.get("kray")
        if runner is None or runner.proc is None or not runner.setup:
            return
        pid = runner.setup["executor_pid"]
        for workload in workloads:
            log(f"profiling kray's executor (pid {pid}) on {workload}")
            try:
                self.results["profiles"][workload] = profile.record(
                    runner, pid, workload, self.dir / f"profile-{workload}")
            except Exception as e:  # noqa: BLE001
                self.results["profiles"][workload] = {"error": f"{type(e).__name__}: {e}"}
        try:
            answer = runner.ask({"op": "render_cost"}, 60)
            if answer.get("ok"):
                self.results["render_cost"] = answer["value"]
        except Exception:  # noqa: BLE001
            pass
        self.save()

    # ------------------------------------------------------------------ the end
    def save(self) -> Path:
        path = self.dir / "results.json"
        path.write_text(json.dumps(self.results, indent=1, default=str))
        (self.o.out / "latest.json").write_text(json.dumps(self.results, indent=1, default=str))
        return path

    def stop_all(self) -> None:
        for runner in self.runners.values():
            try:
                runner.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stopping {runner.spec.name}: {e}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "loadavg_at_start": load}


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def run(options: Options) -> Path:
    signal.signal(signal.SIGTERM, _terminate)  # so that the runners are stopped, not orphaned
    harness = Harness(options)
    log(f"writing to {harness.dir}")
    try:
        harness.start_all()
        for workload in options.workloads:
            if workload == "api-throughput":
                harness.run_api()
            else:
                harness.run_workload(workload)
        if options.profile and "kray" in options.engines:
            harness.profile_kray(PROFILED)
    finally:
        harness.results["machine"]["loadavg_at_end"] = os.getloadavg()
        harness.save()
        harness.stop_all()
    return harness.save()
