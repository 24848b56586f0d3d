"""Cached virtual environments for Python script tasks with ``dependencies``.

One environment per set of requirements and Python: its folder is named by a hash of the
sorted requirements, the Python version and the interpreter's real path, under
``$KRAY_VENV_CACHE`` (default ``~/.cache/kray/venvs``). It is built once, with ``uv`` when it
is on PATH, else ``python -m venv`` and pip, and then reused by every task run and every
worker process on the machine.

Why it is safe to share:

* Two workers needing the same environment take a file lock (``<hash>.lock``) before
  building; the second finds the first one's environment when it gets the lock.
* An environment is built in a temporary folder next to its final place and renamed there
  only when complete, so a folder under its final name is always usable, even if a worker was
  killed mid-build (its temporary folder is removed by the next build of the same hash).
  Paths written into the environment (script shebangs, ``activate``) are rewritten to the
  final place before the rename.

The environment sees nothing of kray: a script imports ``kray.script`` through a folder the
task puts on ``PYTHONPATH`` that holds that one module (``scripts.python``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kray.errors import TaskError
from kray.plugins.scripts import process

CACHE_ENV = "KRAY_VENV_CACHE"
READY = ".kray-ready"  # written last, before the rename: what the environment was built for


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured).expanduser() if configured else Path.home() / ".cache/kray/venvs"
    return root.absolute()


def normalize(requirements: list[str]) -> list[str]:
    return sorted({r.strip() for r in requirements if r and r.strip()})


def venv_key(requirements: list[str]) -> str:
    """The cache key: requirements, Python version and interpreter."""
    identity = {"requirements": normalize(requirements),
                "python": [platform.python_implementation(), sys.version,
                           os.path.realpath(sys.executable), platform.machine()]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure(requirements: list[str], *, log: Callable[[str], None],
           env: dict[str, str]) -> tuple[Path, bool]:
    """The environment for ``requirements``: (its folder, whether this call built it).
    ``log`` gets progress lines (and the installer's output); ``env`` is the installer's
    environment."""
    reqs = normalize(requirements)
    root = cache_root()
    key = venv_key(reqs)
    final = root / key
    if (final / READY).is_file():
        return final, False
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock"):
        if (final / READY).is_file():
            return final, False
        for stale in root.glob(f".build-{key}-*"):  # a build killed midway
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # not ready: not one of ours
            raise TaskError(f"{final} exists but is not a kray environment; remove it")
        log(f"building a virtual environment for {', '.join(reqs)} in {final}")
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
        try:
            _build(tmp, reqs, log, env)
            _relocate(tmp, final)
            (tmp / READY).write_text(json.dumps({"requirements": reqs,
                                                 "python": sys.version}))
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide it from other users of the cache
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def _run(args: list[str], what: str, log: Callable[[str], None], env: dict[str, str],
         cwd: Path) -> None:
    tail: list[str] = []

    def on_line(_stream: str, line: str) -> None:
        if line.strip():
            log(line)
            tail[:] = (tail + [line])[-15:]

    code = process.run(args, cwd=cwd, env=env, on_line=on_line)
    if code != 0:
        raise TaskError(f"{what} failed with exit code {code}: " + " | ".join(tail))


def _build(tmp: Path, reqs: list[str], log: Callable[[str], None],
           env: dict[str, str]) -> None:
    python = str(python_of(tmp))
    uv = shutil.which("uv", path=env.get("PATH"))
    if uv is not None:
        _run([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(tmp)],
             "uv venv", log, env, tmp)
        install = [uv, "pip", "install", "--python", python, *reqs]
    else:
        _run([sys.executable, "-m", "venv", str(tmp)], "python -m venv", log, env, tmp)
        install = [python, "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--quiet", *reqs]
    if reqs:
        _run(install, "installing dependencies", log, env, tmp)


def _relocate(tmp: Path, final: Path) -> None:
    """Rewrite ``tmp`` into ``final`` in the environment's small text files (``bin/`` scripts'
    shebangs, ``activate``, ``pyvenv.cfg``)."""
    old, new = str(tmp).encode(), str(final).encode()
    candidates = [tmp / "pyvenv.cfg", *(tmp / "bin").iterdir()]
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data:
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old, new))
            os.chmod(path, mode)
