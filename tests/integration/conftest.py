"""Fixtures of the integration tests: one real test cloud (tests/cloud) per test session.

The cloud's servers run from their own virtualenv, created on first use by
``tests/cloud/install.py`` (a minute or two once, then instant). ``GLANCESYNC_CLOUD_VENV``
chooses another virtualenv directory. Other directories may import the ``cloud`` fixture
from here: they all share the same cloud (see tests/cloud/conftest_helpers.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # tests.cloud is imported from the work tree
    sys.path.insert(0, str(REPO_ROOT))

from tests.cloud.cloud import TestCloud  # noqa: E402
from tests.cloud.conftest_helpers import SHARED, CloudUnavailable  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything here needs the cloud: `-m "not cloud"` leaves it all out.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cloud)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCloud]:
    """The running test cloud, shared by the whole session.

    Tests share it: they should name their images uniquely, and may call
    ``cloud.purge_images()`` when they need empty regions.
    """
    try:
        test_cloud = SHARED.acquire(lambda: tmp_path_factory.mktemp("cloud"))
    except CloudUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield test_cloud
    finally:
        SHARED.release()


@pytest.fixture
def faulty_cloud(cloud: TestCloud) -> Iterator[TestCloud]:
    """The shared cloud, for a test that kills or hangs servers: repaired afterwards."""
    try:
        yield cloud
    finally:
        cloud.reset_faults()


# The status page served by the service is looked at in the same Chromium as sync.py's.
from tests.browser.conftest import artifacts, browser  # noqa: E402, F401
