"""Expected errors and exit statuses.

Expected errors (a bad configuration, an unreachable region, a wrong password) are
subclasses of :class:`GlanceSyncError` and become one line for the operator; anything
else is a bug and is shown with a traceback only when asked for (``--debug``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitStatus(enum.IntEnum):
    """What ``sync.py`` and the other commands return to the shell."""

    OK = 0  # every region ran (statuses that need a person are not failures)
    REGION_FAILED = 1  # one or more regions failed
    USAGE = 2  # bad command line or configuration
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class GlanceSyncError(Exception):
    """An error an operator can act on; its message is shown without a traceback."""

    exit_status = ExitStatus.REGION_FAILED


class ConfigError(GlanceSyncError):
    """One or more configuration problems, reported together."""

    exit_status = ExitStatus.USAGE

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UsageError(GlanceSyncError):
    """A command line that cannot be acted on (unknown target, bad region name)."""

    exit_status = ExitStatus.USAGE


class RegionError(GlanceSyncError):
    """A region could not be listed or changed; the other regions go on."""


class FacadeError(RegionError):
    """A call to a cloud (or the mock) failed; raised by the facades."""
