"""One test cloud per test session, whichever conftests ask for it.

``tests/fixtures/cloud.py`` defines the ``cloud`` fixture; each suite's conftest that
needs it imports it. pytest then holds one session fixture per directory, and may even load the
defining conftest twice under two module names. The state lives here, in a module imported
under the single name ``tests.cloud.conftest_helpers``, so every copy of the fixture gets the
same servers: a second cloud would double the start-up time and the memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .cloud import CloudError, TestCloud
from .install import DEFAULT_VENV, InstallError, ensure_venv


class CloudUnavailable(Exception):
    """The cloud could not be installed or started; the message says why."""


def cloud_venv() -> Path:
    """``GLANCESYNC_CLOUD_VENV`` if set, else ``<repo>/.cloud-venv``."""
    return Path(os.environ.get("GLANCESYNC_CLOUD_VENV", DEFAULT_VENV))


class SharedCloud:
    """A reference-counted cloud: started by the first user, stopped by the last."""

    def __init__(self) -> None:
        self.cloud: TestCloud | None = None
        self.failure = ""
        self.users = 0

    def acquire(self, make_workdir: Callable[[], Path]) -> TestCloud:
        if self.failure:  # do not retry a failed start for every directory
            raise CloudUnavailable(self.failure)
        if self.cloud is None:
            self.cloud = self._start(make_workdir)
        self.users += 1
        return self.cloud

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.cloud is not None:
            self.cloud.stop()
            self.cloud = None

    def _start(self, make_workdir: Callable[[], Path]) -> TestCloud:
        venv = cloud_venv()
        try:
            ensure_venv(venv, log=lambda line: print(f"test cloud: {line}", file=sys.stderr))
            return TestCloud(make_workdir(), venv).start()
        except InstallError as error:
            self.failure = f"cannot install the test cloud: {error}"
        except CloudError as error:
            self.failure = f"cannot start the test cloud: {error}"
        raise CloudUnavailable(self.failure)


SHARED = SharedCloud()
