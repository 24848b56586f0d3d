"""Build the web UI from ui/ into kray/webui/ and record which sources it was built from.

kray ships the built assets inside the Python package, so installing or running kray never
needs Node.js. This script is the one way to make that build: `npm ci` (exactly the lockfile)
then `npm run build`, then `kray/webui/build-info.json` with a SHA-256 over the UI sources,
which a fast test compares with the sources in the tree to catch a stale build without npm.

Usage: python scripts/build_ui.py [--skip-install]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "ui"
OUT = ROOT / "kray" / "webui"
SOURCE_FILES = ("index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


def source_paths(ui: Path = UI) -> list[Path]:
    """Every file the build depends on: ui/src/** plus the top-level config files, sorted."""
    paths = [p for p in (ui / "src").rglob("*") if p.is_file()]
    paths += [ui / name for name in SOURCE_FILES]
    return sorted(paths, key=lambda p: p.relative_to(ui).as_posix())


def sources_hash(ui: Path = UI) -> str:
    """SHA-256 over the sources' relative paths and contents (content only, no timestamps)."""
    digest = hashlib.sha256()
    for path in source_paths(ui):
        digest.update(path.relative_to(ui).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def build(skip_install: bool = False) -> Path:
    """Install the locked dependencies, build, and write build-info.json; returns its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: install Node.js 20+ to build the UI")
    if not skip_install:
        run([npm, "ci", "--no-audit", "--no-fund"], UI)
    run([npm, "run", "build"], UI)
    info = {"sourcesSha256": sources_hash(), "files": sorted(
        p.relative_to(OUT).as_posix() for p in OUT.rglob("*") if p.is_file())}
    path = OUT / "build-info.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"built {len(info['files'])} files into {OUT.relative_to(ROOT)}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-install", action="store_true", help="reuse ui/node_modules")
    args = parser.parse_args(argv)
    build(skip_install=args.skip_install)
    return 0


if __name__ == "__main__":
    sys.exit(main())
