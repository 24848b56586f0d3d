"""The four top-level folders ship as one distribution importing as ``kray.*``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    (found,) = out.glob("kray-*.whl")
    return found


def test_wheel_maps_folders_into_kray_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("kray/engine/core.py", "kray/plugins/core/flowable.py",
                   "kray/storage/repository.py", "kray/api/__init__.py", "kray/py.typed"):
        assert module in names
    top = {n.split("/")[0] for n in names}
    assert not top & {"plugins", "storage", "api", "tests", "benchmarks"}
    metadata = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "core = kray.plugins.core:register" in entry_points
    assert "kray = kray.cli:main" in entry_points


def test_wheel_imports_as_kray(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kray.plugins.core, "
            "kray.storage.internal, kray.api; print(kray.plugins.core.__file__)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(tmp_path))
