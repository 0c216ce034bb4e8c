"""Shared fixtures: generated Sentinel-2-like inputs (written once per session) and the real samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_rasters  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def rasters(tmp_path_factory) -> dict[str, Path]:
    """Every generated input of tests/make_rasters.py: name -> path (read-only by convention)."""
    return make_rasters.write_all(tmp_path_factory.mktemp("rasters"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real sample data folder (../shared/data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hesbaye_dir(shared_data) -> Path:
    folder = shared_data / "worldcereal-hesbaye"
    if not folder.is_dir():
        pytest.skip(f"Hesbaye samples not present at {folder}")
    return folder


@pytest.fixture(scope="session")
def bigearthnet_dir(shared_data) -> Path:
    folder = shared_data / "bigearthnet-s2-examples"
    if not folder.is_dir():
        pytest.skip(f"BigEarthNet samples not present at {folder}")
    return folder
