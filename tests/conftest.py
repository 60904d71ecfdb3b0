"""Shared fixtures. Tests run offline: no model hub, no telemetry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
REALAUDIO = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))


@pytest.fixture(scope="session")
def realaudio() -> Path:
    """../shared/data/realaudio (86 real recordings + INVENTORY.csv); the test is skipped when absent."""
    if not (REALAUDIO / "INVENTORY.csv").exists():
        pytest.skip(f"real audio not available at {REALAUDIO}")
    return REALAUDIO


@pytest.fixture(scope="session")
def inventory(realaudio: Path):
    import pandas as pd

    return pd.read_csv(realaudio / "INVENTORY.csv", keep_default_na=False)


@pytest.fixture
def repo() -> Path:
    return REPO
