"""Fixtures of the coordination tests: real backends (tooz's file driver, and Debian's
redis-server started here on 127.0.0.1) and the bundled example in a mock store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fiwareglancesync.mock import main as mock_main  # noqa: E402
from tests.fixtures.redis import own_redis, redis_server  # noqa: E402, F401

EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
EXAMPLE_SCENARIO = ROOT / "examples" / "scenario"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A fresh mock store holding the bundled example."""
    path = tmp_path / "store"
    assert mock_main(["--path", str(path), str(EXAMPLE_SCENARIO)]) == 0
    return path


@pytest.fixture(params=["file", "redis"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A coordination URL of each real backend the suite runs."""
    if request.param == "file":
        return f"file://{tmp_path / 'coordination'}"
    return request.getfixturevalue("redis_server").url
