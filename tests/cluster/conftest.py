"""Cluster tests start clusters of their own (never the session's Ray, see ``local``).

Ray's socket paths must stay under ~107 bytes, so their temp dirs are short ones under /tmp,
removed at the end of the module that made them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
