"""Fixtures of the command-line tests: a fresh ``HPO_HOME`` whose embedded server is stopped and
whose directory is removed afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._helpers import new_home, stop_embedded


@pytest.fixture
def home() -> Iterator[Path]:
    path = new_home()
    yield path
    stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)
