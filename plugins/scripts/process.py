"""Run one script process: in its own session, dying with its worker, its output streamed by line.

Why each rule:

* **Own session** (``start_new_session``): the script and everything it starts form one
  process group, so kray can kill them all at once, and a signal sent to the worker's group
  never reaches them by accident.
* **Dies with the worker, children included**: Ray ends a timed-out task by making its worker
  exit, and the exiting worker SIGKILLs its direct children (``RAY_kill_child_processes_
  on_worker_exit``), but not theirs: the ``sleep`` a shell script runs would survive. So
  each script gets a *watchdog*: a tiny ``/bin/sh``, detached from the worker (its parent
  exits at once, so no one counts it as the worker's child), that blocks reading a pipe whose
  only writer is the worker. When the worker dies, however it dies, the pipe reaches
  end-of-file and the watchdog SIGKILLs the script's whole group. On a normal end kray tells
  it ``done`` first, while the group's id is still reserved, so it never kills a reused id.
  Besides, on Linux the script itself asks the kernel for SIGKILL when the worker thread
  that started it dies (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec).
* **Nothing left behind**: when the script ends, whatever it left running in its group
  (``sleep 100 &``) is killed before the script is reaped, so that the group id cannot have
  been reused by then, and the output pipes reach end-of-file.
* **Both pipes read at once**, with a selector on one thread: a script that fills the stderr
  pipe while kray waits on stdout would otherwise block forever. Each line goes to
  ``on_line`` as soon as it is complete, so the worker's live-log thread ships it while the
  script still runs.

A script that leaves its group on purpose (its own ``setsid``) is beyond all of this.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kray.errors import TaskError

# Lines longer than this are cut into pieces of this size (a script printing without newlines
# must not grow the worker's memory without bound).
MAX_LINE = 4 << 20
# How long output may still arrive once the command and its group are dead: only a process
# that escaped the group (its own ``setsid``) can keep a pipe open that long.
DRAIN_GRACE = 2.0
PR_SET_PDEATHSIG = 1

# The watchdog ($1: the script's group id): its stdin is the pipe; the subshell outlives the
# shell that starts it, so it is nobody's child but init's. ``kill -KILL -N`` is the form both
# dash and bash accept for a process group.
WATCHDOG = ('exec 3<&0 </dev/null; '
            '( read -r line <&3; [ "$line" = done ] || kill -KILL "-$1" ) >/dev/null 2>&1 &')

LineHandler = Callable[[str, str], None]  # (stream "stdout" | "stderr", line without "\n")


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Resolved once, in the parent: the child only calls it (no imports, no allocation after fork).
_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the worker died before the request took effect
            os._exit(137)
    return preexec


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid``; quiet when none is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(proc: subprocess.Popen[bytes], block: bool = False) -> bool:
    """Whether ``proc`` has ended (waiting for it when ``block``), without reaping it: its
    pid, hence its group id, stays taken until ``proc.wait()``."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return proc.wait() is not None if block else proc.poll() is not None
    flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
    try:
        info = waitid(os.P_PID, proc.pid, flags)
    except ChildProcessError:
        return True
    return info is not None


def _watch(pgid: int) -> int | None:
    """Start the watchdog of group ``pgid``; return the pipe's write end (None if it could
    not start: the script still dies with the worker, its children may not)."""
    read_end, write_end = os.pipe()  # not inheritable: no other child holds the write end
    try:
        subprocess.run(["/bin/sh", "-c", WATCHDOG, "kray-watchdog", str(pgid)],
                       stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return write_end


def _stand_down(write_end: int) -> None:
    try:
        os.write(write_end, b"done\n")
    except OSError:
        pass
    os.close(write_end)


class _Lines:
    """Splits one stream's bytes into lines for ``on_line``."""

    def __init__(self, name: str, on_line: LineHandler) -> None:
        self.name, self.on_line = name, on_line
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data
        start = 0
        while (end := self.buf.find(b"\n", start)) >= 0:
            self._emit(self.buf[start:end])
            start = end + 1
        del self.buf[:start]
        while len(self.buf) >= MAX_LINE:
            self._emit(self.buf[:MAX_LINE])
            del self.buf[:MAX_LINE]

    def close(self) -> None:
        if self.buf:
            self._emit(self.buf)
            self.buf = bytearray()

    def _emit(self, raw: bytes | bytearray) -> None:
        for i in range(0, max(len(raw), 1), MAX_LINE):
            piece = bytes(raw[i:i + MAX_LINE])
            self.on_line(self.name, piece.decode("utf-8", errors="replace").rstrip("\r"))


def run(args: Sequence[str], *, cwd: Path, env: Mapping[str, str],
        on_line: LineHandler) -> int:
    """Run ``args`` in ``cwd`` with exactly ``env``; call ``on_line`` for each output line as
    it comes; return the exit code (128 + N when killed by signal N).

    Whatever way this returns or raises (an interrupt included), the command and every
    process of its group are dead by then.
    """
    try:
        proc = subprocess.Popen(
            list(args), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()))  # noqa: PLW1509 - one prctl call only
    except OSError as e:
        raise TaskError(f"cannot start {args[0] if args else 'the script'}: {e}") from None
    assert proc.stdout is not None and proc.stderr is not None
    watchdog: int | None = None
    streams = {proc.stdout.fileno(): _Lines("stdout", on_line),
               proc.stderr.fileno(): _Lines("stderr", on_line)}
    try:
        watchdog = _watch(proc.pid)
        with selectors.DefaultSelector() as sel:
            for fd in streams:
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            ended_at: float | None = None
            while sel.get_map():
                for key, _ in sel.select(timeout=0.1):
                    try:
                        data = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if data:
                        streams[key.fd].feed(data)
                    else:
                        sel.unregister(key.fd)
                if ended_at is None and _exited(proc):
                    kill_group(proc.pid)  # leftovers; the script is a zombie, its id still ours
                    ended_at = time.monotonic()
                elif ended_at is not None and time.monotonic() - ended_at > DRAIN_GRACE:
                    break  # a process outside the group holds a pipe: stop listening
        for lines in streams.values():
            lines.close()
        _exited(proc, block=True)  # it may have closed its output and still be running
    finally:
        kill_group(proc.pid)
        if watchdog is not None:
            _stand_down(watchdog)
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
    return code if code >= 0 else 128 - code
