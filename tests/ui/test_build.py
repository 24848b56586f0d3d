"""The shipped web UI (kray/webui) is the build of the sources in ui/.

The fast test needs no Node.js: build-info.json records a SHA-256 over the UI sources when
scripts/build_ui.py builds, so a source change without a rebuild fails here. The slow test
rebuilds from a clean copy with the locked dependencies and compares every file byte for byte,
which catches a build-info.json written by hand or a non-reproducible build.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
WEBUI = ROOT / "kray" / "webui"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_ui", ROOT / "scripts" / "build_ui.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_build_matches_the_sources() -> None:
    info = json.loads((WEBUI / "build-info.json").read_text())
    assert info["sourcesSha256"] == _build_script().sources_hash(), (
        "kray/webui is stale: run `python scripts/build_ui.py` after changing ui/")
    listed = set(info["files"])
    on_disk = {p.relative_to(WEBUI).as_posix() for p in WEBUI.rglob("*") if p.is_file()}
    assert on_disk - {"build-info.json"} == listed - {"build-info.json"}


def test_index_references_existing_hashed_assets() -> None:
    html = (WEBUI / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert any(r.endswith(".js") for r in refs) and any(r.endswith(".css") for r in refs)
    for ref in refs:
        assert (WEBUI / ref.lstrip("/")).is_file(), ref
        assert re.search(r"-[\w-]{8}\.(js|css)$", ref), f"{ref} is not content-hashed"
    assert "<script>" not in html, "no inline scripts: the CSP forbids them"


def test_sources_hash_changes_with_content(tmp_path: Path) -> None:
    build = _build_script()
    ui = tmp_path / "ui"
    (ui / "src").mkdir(parents=True)
    for name in build.SOURCE_FILES:
        (ui / name).write_text(name)
    (ui / "src" / "a.ts").write_text("one")
    first = build.sources_hash(ui)
    (ui / "src" / "a.ts").write_text("two")
    assert build.sources_hash(ui) != first


@pytest.mark.slow
def test_clean_rebuild_is_byte_identical(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        skip_or_fail("npm is not installed")
    work = tmp_path / "ui"
    shutil.copytree(ROOT / "ui", work, ignore=shutil.ignore_patterns("node_modules"))
    out = tmp_path / "out"
    try:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work, check=True,
                       capture_output=True, timeout=600)
    except subprocess.CalledProcessError as e:
        skip_or_fail(f"npm ci failed (registry unreachable?): {e.stderr.decode()[-400:]}")
    subprocess.run([npm, "run", "build", "--", "--outDir", str(out), "--emptyOutDir"],
                   cwd=work, check=True, capture_output=True, timeout=600)
    built = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    shipped = {p.relative_to(WEBUI).as_posix(): p.read_bytes()
               for p in WEBUI.rglob("*") if p.is_file() and p.name != "build-info.json"}
    assert sorted(built) == sorted(shipped)
    for name, data in built.items():
        assert data == shipped[name], f"{name} differs from the shipped build"
