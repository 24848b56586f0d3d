"""The engines: which runner process serves each, and the virtual environment it runs in.

kray and raw Ray run in kray's own interpreter. Every peer is installed by the harness into
its own virtual environment under ``benchmarks/.venvs/<name>`` (gitignored) with pip, pinned,
never as a kray dependency. An install that fails is recorded, not fatal.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
RUNNERS = HERE / "runners"

# Pinned. fastapi for Prefect: 3.8.8's server still passes ``min_items`` to ``Body``, which
# newer FastAPI releases reject at import time. Prefect 3.9 needs a certifi newer than the
# package index had when this was written.
REQUIREMENTS: dict[str, list[str]] = {
    "prefect": ["prefect==3.8.8", "fastapi==0.139.0"],
    "dagster": ["dagster==1.13.28"],
    "airflow": ["apache-airflow==3.3.2"],
    "report": ["matplotlib==3.10.3"],
}


@dataclass(frozen=True)
class Runner:
    """One long-lived runner process; several engine variants may share it."""

    name: str
    script: str
    venv: str | None  # None: kray's own interpreter
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Engine:
    name: str
    runner: Runner
    label: str  # how the tables name it
    note: str = ""
    workloads: tuple[str, ...] = field(default=("chain40-light", "chain10-heavy", "fanout",
                                                "foreach100"))


KRAY = Runner("kray", "kray_runner.py", None)
PREFECT = Runner("prefect", "prefect_runner.py", "prefect")
DAGSTER = Runner("dagster", "dagster_runner.py", "dagster")
AIRFLOW = Runner("airflow", "airflow_runner.py", "airflow")
AIRFLOW_TUNED = Runner("airflow-tuned", "airflow_runner.py", "airflow", ("--idle-sleep", "0.1"))

ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("kray", KRAY, "kray", "Return tasks, fibo in a template, on Ray workers"),
    Engine("kray-script", KRAY, "kray (python.Script)",
           "one Python process per task", workloads=("chain40-light",)),
    Engine("kray-actor", KRAY, "kray (executor actor, no HTTP)",
           "create_execution + wait_execution from a Ray driver", workloads=()),
    Engine("ray", KRAY, "raw Ray", "the same DAG as plain Ray tasks"),
    Engine("prefect", PREFECT, "Prefect 3", "tasks in the flow's process, server on 127.0.0.1"),
    Engine("dagster-inprocess", DAGSTER, "Dagster (in-process)", "SQLite instance"),
    Engine("dagster-multiprocess", DAGSTER, "Dagster (multiprocess)",
           "one process per step, SQLite instance"),
    Engine("airflow", AIRFLOW, "Airflow 3", "standalone, LocalExecutor, defaults"),
    Engine("airflow-tuned", AIRFLOW_TUNED, "Airflow 3 (idle sleep 0.1 s)",
           "standalone, LocalExecutor, scheduler_idle_sleep_time=0.1"),
)}
# Engines with an API to trigger runs: kray over HTTP (``kray server``) and through the
# executor actor's own API, Prefect and Airflow over HTTP. Dagster has no run-triggering REST
# API of its own (GraphQL through its webserver only) and is left out.
API_ENGINES = ("kray", "kray-actor", "prefect", "airflow", "airflow-tuned")


def python_of(name: str | None) -> Path:
    return Path(sys.executable) if name is None else VENVS / name / "bin" / "python"


def ensure_venv(name: str, log) -> str | None:
    """Create ``.venvs/<name>`` with its pinned requirements, once. Returns an error text, or
    None when it is ready."""
    requirements = REQUIREMENTS[name]
    folder = VENVS / name
    stamp = folder / ".bench-requirements"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted and python_of(name).exists():
        return None
    log(f"installing {name} into {folder}: {' '.join(requirements)}")
    try:
        if not python_of(name).exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        proc = subprocess.run([str(python_of(name)), "-m", "pip", "install", "-q",
                               *requirements], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines()
                 if "WARNING: Location" not in line]
        return "pip install failed: " + " | ".join(lines[-6:])
    stamp.write_text(wanted)
    return None
