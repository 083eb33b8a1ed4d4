"""One sync per region at a time, on one host or many: a tooz lock per region.

Two runs that synchronise the same region at once would both see an image missing and
both upload it. So a sync takes the region's lock before it plans, and plans again once
it holds it: the second run then finds the first one's work done. The lock lives in the
coordination backend of ``coordination_url`` (:mod:`fiwareglancesync.coordination`);
``sync.py``, the service's syncs and the agents all take the same one. A run that dies
never leaves a region locked: the kernel releases a ``file://`` lock with its process,
a server-side backend (Redis, ZooKeeper, etcd) once its heartbeat stops.

A waiting run quotes the holder (pid, host, command, since when) when it gives up. With
the default ``file://`` backend the holder's line is written into the lock file itself,
as before tooz; with another backend the holder joins a group of its own for the
region, its line as the member's capabilities.

``file://`` lock files live in one directory shared by every user of the host (sticky
and world writable, like /tmp), named after a hash of what identifies the region (the
Keystone URL and region name, or the mock store and region): the name says nothing,
the content says who. Other backends take the same name as the lock's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fiwareglancesync.coordination import (
    CoordinationUnavailable,
    Coordinator,
    default_lock_dir,
    default_member_id,
    file_directory,
    file_url,
)
from fiwareglancesync.errors import RegionError, os_reason

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
MAX_HOLDER_BYTES = 512


class RegionBusy(RegionError):
    """Another process held the region's lock for longer than the run agrees to wait."""


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
    another user made may be read-only for us: it is still read for its holder's line
    (tooz, which needs it writable to lock it, then says why it cannot).
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


def lock_name(key: str) -> str:
    """The lock's name in the backend: a hash of ``key`` (and, for ``file://``, the
    name of its file, the same as before tooz)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"{digest}.lock"


# A process's POSIX (fcntl) lock on a file is released when the process closes *any*
# descriptor of that file. So while one thread holds a region, no other thread of the
# process may open its lock file: a guard per file keeps them off it, and they quote
# the holder line from here instead.
_GUARDS_LOCK = threading.Lock()
_GUARDS: dict[Path, threading.Lock] = {}
_LOCAL_HOLDERS: dict[Path, str] = {}


def _guard_for(path: Path) -> threading.Lock:
    with _GUARDS_LOCK:
        return _GUARDS.setdefault(path, threading.Lock())


class _FileNote:
    """The holder's line, in the ``file://`` lock file itself."""

    def __init__(self, path: Path):
        self.path = path
        self.guard = _guard_for(path)
        self.guarded = False
        self.descriptor: int | None = None
        self.writable = False

    def ready(self) -> bool:
        """Whether this thread may try the lock: no other thread of the process has it."""
        if not self.guarded:
            if not self.guard.acquire(blocking=False):
                return False
            self.guarded = True
            self._open()
        return True

    def _open(self) -> None:
        try:
            _ensure_directory(self.path.parent)
            # Made here, world-writable and never through a symbolic link, before tooz
            # opens it: another user's runs must be able to lock it too.
            self.descriptor, self.writable = _open_lock_file(self.path)
        except OSError as error:
            raise RegionError(
                f"cannot use the lock file {self.path}: {os_reason(error)} "
                "(set lock_dir in [main] to a directory this user may write)"
            ) from None

    def holder(self) -> str:
        if self.descriptor is None:
            return _LOCAL_HOLDERS.get(self.path) or "another process"
        return _holder(self.descriptor)

    def write(self, text: str) -> None:
        _LOCAL_HOLDERS[self.path] = " ".join(text.split())
        descriptor = self.descriptor
        if self.writable and descriptor is not None and stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (text + "\n").encode("utf-8"), 0)

    def clear(self) -> None:
        # The file keeps its line: it is read only while someone holds the lock, who
        # wrote their own.
        _LOCAL_HOLDERS.pop(self.path, None)

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None
        if self.guarded:
            self.guarded = False
            self.guard.release()


class _GroupNote:
    """The holder's line, as its capabilities in a group of the region's own.

    Best effort: a backend without groups, or one that fails here, only makes the
    waiting run say "another process".
    """

    def __init__(self, coordinator: Coordinator, name: str):
        self.coordinator = coordinator
        self.group = f"glancesync-holder-{name}"

    def holder(self) -> str:
        try:
            for member in sorted(self.coordinator.members(self.group)):
                found = self.coordinator.capabilities(self.group, member)
                if isinstance(found, dict) and found.get("holder"):
                    return " ".join(str(found["holder"]).split())[:MAX_HOLDER_BYTES]
        except Exception as error:  # noqa: BLE001 - the note is only a courtesy
            logger.debug("cannot read the holder of %s: %s", self.group, error)
        return "another process"

    def write(self, text: str) -> None:
        try:
            self.coordinator.join_group(self.group, {"holder": text})
        except Exception as error:  # noqa: BLE001 - the note is only a courtesy
            logger.debug("cannot note the holder of %s: %s", self.group, error)

    def clear(self) -> None:
        try:
            self.coordinator.leave_group(self.group)
        except Exception as error:  # noqa: BLE001 - the note is only a courtesy
            logger.debug("cannot clear the holder of %s: %s", self.group, error)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


class RegionLocks:
    """Region locks in the coordination backend ``url`` (default: ``file://`` in
    ``directory``); a sync waits up to ``timeout`` seconds for one.

    The coordinator is started at the first lock taken, by the process taking it (a
    forked ``--parallel`` child starts its own), and stopped by :meth:`close`. A
    backend that cannot be reached fails that region only, before anything is done
    to it; the next region tries again.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        timeout: float,
        describe: Callable[[], str] = describe_this_process,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        url: str | None = None,
    ):
        self.directory = Path(directory) if directory else default_lock_dir()
        self.url = url or file_url(self.directory)
        self.timeout = timeout
        self.describe = describe
        self.clock = clock
        self.sleep = sleep
        self._coordinator: Coordinator | None = None
        self._pid: int | None = None

    def path_for(self, key: str) -> Path:
        """The lock file of ``key`` with the ``file://`` backend."""
        return (file_directory(self.url) or self.directory) / lock_name(key)

    @contextlib.contextmanager
    def hold(self, key: str, region: str) -> Iterator[None]:
        """Hold the lock of ``key`` (the region ``region``) while the block runs."""
        name = lock_name(key)
        directory = file_directory(self.url)
        note = _FileNote(directory / name) if directory is not None else None
        try:
            if note is not None:
                note.ready()  # an unusable lock directory fails here, before any backend
            try:
                coordinator = self._started()
                if note is None:
                    note = _GroupNote(coordinator, name)
                lock = coordinator.lock(name)
                self._acquire(coordinator, lock, note, region)
            except CoordinationUnavailable as error:
                # No lock, no sync: the region fails before anything is done to it.
                raise CoordinationUnavailable(
                    f"{error}; the region was not synchronised (no region lock)"
                ) from None
            try:
                note.write(self.describe())
                yield
            finally:
                note.clear()
                coordinator.release(lock)
        finally:
            if note is not None:
                note.close()

    def close(self) -> None:
        """Stop this process's coordinator (a forked child leaves its parent's alone)."""
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is not None and self._pid == os.getpid():
            coordinator.stop()

    def _started(self) -> Coordinator:
        if self._coordinator is None or self._pid != os.getpid():
            # A member id of its own: an agent of this process is another member.
            member = f"{default_member_id()}/locks-{os.urandom(3).hex()}"
            coordinator = Coordinator(self.url, member)
            coordinator.start()  # CoordinationUnavailable: this region fails, no lock
            self._coordinator, self._pid = coordinator, os.getpid()
        return self._coordinator

    def _acquire(
        self, coordinator: Coordinator, lock: object, note: _FileNote | _GroupNote, region: str
    ) -> None:
        deadline = self.clock() + self.timeout
        announced = False
        while True:
            if note.ready() and coordinator.try_acquire(lock):
                return
            holder = note.holder()
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
