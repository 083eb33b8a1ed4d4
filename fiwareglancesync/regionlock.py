"""One sync per region at a time on a host: a lock file per region, held with flock.

Two runs that synchronise the same region at once would both see an image missing and
both upload it. So a sync takes the region's lock before it plans, and plans again once
it holds it: the second run then finds the first one's work done. flock locks are
released by the kernel when their process dies, so a killed run never leaves a region
locked. The lock file holds a line describing its holder (pid, host, command, since
when), which a waiting run quotes when it gives up.

Lock files live in one directory shared by every user of the host (sticky and world
writable, like /tmp), named after a hash of what identifies the region (the Keystone URL
and region name, or the mock store and region): the name says nothing, the content
says who.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import os
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fiwareglancesync.errors import RegionError, os_reason

logger = logging.getLogger(__name__)

LOCK_DIR_NAME = "glancesync-locks"
POLL_SECONDS = 0.25
MAX_HOLDER_BYTES = 512


class RegionBusy(RegionError):
    """Another process held the region's lock for longer than the run agrees to wait."""


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / LOCK_DIR_NAME


def describe_this_process() -> str:
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()} ({command}, since {since})"


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)
    # Shared by every user of the host, like /tmp: anyone may add a lock file, nobody may
    # remove another's. Only done when we made it; an existing directory is left as it is.
    with contextlib.suppress(OSError):
        directory.chmod(0o1777)


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """An open descriptor on the lock file and whether it is writable.

    O_NOFOLLOW: a symbolic link planted in the shared directory is never followed. A file
    another user made may be read-only for us: flock works on read-only descriptors too.
    """
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags | os.O_RDWR, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), False
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, 0o666)  # so that other users' runs can write it too
    return descriptor, True


def _holder(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, MAX_HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return " ".join(text.split()) or "another process"


class RegionLocks:
    """Lock files in ``directory``; a sync waits up to ``timeout`` seconds for one."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        timeout: float,
        describe: Callable[[], str] = describe_this_process,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.directory = Path(directory) if directory else default_lock_dir()
        self.timeout = timeout
        self.describe = describe
        self.clock = clock
        self.sleep = sleep

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self.directory / f"{digest}.lock"

    @contextlib.contextmanager
    def hold(self, key: str, region: str) -> Iterator[None]:
        """Hold the lock of ``key`` (the region ``region``) while the block runs."""
        path = self.path_for(key)
        try:
            _ensure_directory(self.directory)
            descriptor, writable = _open_lock_file(path)
        except OSError as error:
            raise RegionError(
                f"cannot use the lock file {path}: {os_reason(error)} "
                "(set lock_dir in [main] to a directory this user may write)"
            ) from None
        try:
            self._acquire(descriptor, region)
            if writable and stat.S_ISREG(os.fstat(descriptor).st_mode):
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, (self.describe() + "\n").encode("utf-8"), 0)
            yield
        finally:
            os.close(descriptor)  # closing releases the flock

    def _acquire(self, descriptor: int, region: str) -> None:
        deadline = self.clock() + self.timeout
        announced = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            holder = _holder(descriptor)
            if self.clock() >= deadline:
                raise RegionBusy(
                    f"skipped: another GlanceSync run ({holder}) is synchronising this "
                    f"region; waited {self.timeout:g} s (lock_timeout)"
                )
            if not announced:
                logger.info(
                    "%s: waiting up to %g s for another GlanceSync run (%s) to finish with it",
                    region,
                    self.timeout,
                    holder,
                )
                announced = True
            self.sleep(min(POLL_SECONDS, max(deadline - self.clock(), 0.01)))
