"""``kray.plugins.scripts.process``: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from kray.errors import TaskError
from kray.plugins.scripts import process

from .conftest import alive, read_pids, wait_dead


def run(script: str, cwd: Path) -> tuple[int, list[tuple[str, str, float]]]:
    lines: list[tuple[str, str, float]] = []
    code = process.run(["/bin/sh", "-c", script], cwd=cwd, env=dict(os.environ),
                       on_line=lambda s, l: lines.append((s, l, time.monotonic())))
    return code, lines


def test_lines_arrive_while_the_script_runs(tmp_path: Path) -> None:
    start = time.monotonic()
    code, lines = run("echo first; sleep 1; echo second >&2", tmp_path)
    end = time.monotonic()
    assert code == 0
    assert [(s, l) for s, l, _ in lines] == [("stdout", "first"), ("stderr", "second")]
    assert lines[0][2] - start < 0.5  # not held back until the end
    assert end - lines[0][2] >= 0.9


def test_both_pipes_full_do_not_deadlock(tmp_path: Path) -> None:
    script = ("i=0; while [ $i -lt 20000 ]; do echo err-$i >&2; echo out-$i; "
              "i=$((i+1)); done")
    code, lines = run(script, tmp_path)
    assert code == 0
    assert sum(1 for s, _, _ in lines if s == "stdout") == 20000
    assert [l for s, l, _ in lines if s == "stderr"][-1] == "err-19999"


def test_a_huge_line_is_cut_and_a_last_line_without_newline_kept(tmp_path: Path) -> None:
    size = process.MAX_LINE + 1000
    code, lines = run(f"head -c {size} /dev/zero | tr '\\0' x; echo; printf tail",
                      tmp_path)
    assert code == 0
    assert [len(l) for _, l, _ in lines] == [process.MAX_LINE, 1000, 4]
    assert lines[-1][1] == "tail"


def test_exit_codes(tmp_path: Path) -> None:
    assert run("exit 7", tmp_path)[0] == 7
    assert run("kill -9 $$", tmp_path)[0] == 128 + 9
    code, lines = run("/no/such/program", tmp_path)
    assert code == 127
    assert "/no/such/program" in lines[-1][1]


def test_an_error_while_reading_kills_the_whole_group(tmp_path: Path) -> None:
    def on_line(_stream: str, line: str) -> None:
        raise RuntimeError(f"handler failed on {line}")

    pid_file = tmp_path / "pids"
    with pytest.raises(RuntimeError, match="handler failed"):
        script = f"sleep 60 & echo $! > {pid_file}; echo $$ >> {pid_file}; echo go; wait"
        process.run(["/bin/sh", "-c", script], cwd=tmp_path, env=dict(os.environ),
                    on_line=on_line)
    pids = read_pids(pid_file)
    assert wait_dead(pids, timeout=5) == []


@pytest.mark.parametrize("how", ["worker", "children-first"])
def test_the_script_dies_with_its_worker(tmp_path: Path, how: str) -> None:
    """SIGKILL the process that runs ``process.run``: the script and its own children die
    too. ``children-first`` does what an exiting Ray worker does: SIGKILL its direct children
    (the script's shell), then die."""
    pid_file = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pid_file}; echo $$ >> {pid_file}; wait"
    worker = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from kray.plugins.scripts import process
        process.run(["/bin/sh", "-c", {script!r}], cwd=Path({str(tmp_path)!r}),
                    env=dict(os.environ), on_line=lambda s, l: None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", worker])
    try:
        deadline = time.monotonic() + 20
        while (not pid_file.exists() or len(read_pids(pid_file)) < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = read_pids(pid_file)
        assert len(pids) == 2 and all(alive(p) for p in pids)
        if how == "children-first":
            for child in psutil.Process(proc.pid).children():
                child.kill()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert wait_dead(pids, timeout=15) == []  # generous: a loaded 2-core CI machine


def test_a_missing_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="cannot start /no/such/shell"):
        process.run(["/no/such/shell", "-c", "true"], cwd=tmp_path, env={},
                    on_line=lambda s, l: None)
