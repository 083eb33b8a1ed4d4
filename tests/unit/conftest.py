"""Fixtures shared by the unit tests of sync.py: the bundled example loaded into a store."""

from pathlib import Path

import pytest

from fiwareglancesync.mock import main as mock_main

ROOT = Path(__file__).parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
EXAMPLE_SCENARIO = ROOT / "examples" / "scenario"


@pytest.fixture
def store(tmp_path):
    """A fresh mock store holding the bundled example."""
    path = tmp_path / "store"
    assert mock_main(["--path", str(path), str(EXAMPLE_SCENARIO)]) == 0
    return path


@pytest.fixture
def environ(store):
    """sync.py's environment: the example's configuration, on that store."""
    return {"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}
