"""Fixtures of the integration tests: one real test cloud (tests/cloud) per test session.

The cloud's servers run from their own virtualenv, created on first use by
``tests/cloud/install.py`` (a minute or two once, then instant). ``GLANCESYNC_CLOUD_VENV``
chooses another virtualenv directory. The ``cloud`` fixture itself is defined in
tests/fixtures/cloud.py, where other suites import it from too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # tests.cloud is imported from the work tree
    sys.path.insert(0, str(REPO_ROOT))

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything here needs the cloud: `-m "not cloud"` leaves it all out.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cloud)


# The status page served by the service is looked at in the same Chromium as sync.py's.
from tests.fixtures.browser import artifacts, browser  # noqa: E402, F401
from tests.fixtures.cloud import cloud, faulty_cloud  # noqa: E402, F401

# The message bus the agent's tests have the master's Glance notify.
from tests.fixtures.rabbitmq import rabbitmq  # noqa: E402, F401

# The coordination tests' Redis, started on 127.0.0.1 by the suite.
from tests.fixtures.redis import redis_server  # noqa: E402, F401
