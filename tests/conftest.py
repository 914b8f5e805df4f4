"""Shared fixtures: only data that ships with the repository (tests never read the development data outside it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = REPO / "tests" / "data" / "idc_small"
ASSETS = REPO / "assets"


@pytest.fixture(scope="session")
def small_data() -> Path:
    """A few dozen real patches of 7 patients in the dataset layout (one border crop)."""
    return SMALL_DATA
