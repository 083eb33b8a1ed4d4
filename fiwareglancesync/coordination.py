"""One coordination for every GlanceSync process, through tooz, from ``coordination_url``.

``sync.py``, the REST service and the agents take the same region locks and (the
agents) join the same groups in the backend ``coordination_url`` names: ``file://DIR``
(one host; fcntl locks on files in DIR, the default being today's lock directory),
``redis://host:port``, ``zookeeper://host:port``, ``etcd3+http://host:port``,
``memcached://host:port``... Everything tooz is reached through :class:`Coordinator`;
nothing above this module imports tooz, and a backend that fails is a
:class:`CoordinationUnavailable` (a region's failure, exit status 1), never a tooz
exception.

tooz is imported when a coordinator starts, not when this module is: the configuration
checks URLs here without loading any driver.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from fiwareglancesync.errors import RegionError

logger = logging.getLogger(__name__)

LOCK_DIR_NAME = "glancesync-locks"
# tooz's own default number of partitions of a consistent hash ring.
PARTITIONS = 32
# Backends whose URL must name a server (the others: file://DIR, ipc://).
_NEEDS_HOST = {
    "redis",
    "zookeeper",
    "kazoo",
    "etcd3+http",
    "etcd3+https",
    "memcached",
    "mysql",
    "postgresql",
}
# The port a backend listens on when its URL names none, for the reachability probe.
_DEFAULT_PORTS = {
    "redis": 6379,
    "zookeeper": 2181,
    "kazoo": 2181,
    "etcd3+http": 2379,
    "etcd3+https": 2379,
    "memcached": 11211,
    "mysql": 3306,
    "postgresql": 5432,
}
# Seconds the probe waits for the backend's TCP port. tooz's Redis driver retries a
# refused connection 15 times with its client's backoff (about a minute): a probe first
# makes a backend that is down one prompt line instead.
PROBE_SECONDS = 5.0
_EXAMPLE = "file:///var/lock/glancesync or redis://127.0.0.1:6379"
_SECRET_WORDS = ("password", "secret", "token", "key")


class CoordinationUnavailable(RegionError):
    """The coordination backend cannot be used: the region is not synchronised."""


# --------------------------------------------------------------------------- URLs (pure)


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / LOCK_DIR_NAME


def file_url(directory: str | os.PathLike[str] | None) -> str:
    """The ``file://`` URL of a lock directory (None: the default one)."""
    return "file://" + str(Path(directory) if directory else default_lock_dir())


def file_directory(url: str) -> Path | None:
    """The directory of a ``file://`` URL; None for any other backend."""
    parsed = urlsplit(url)
    return Path(parsed.path) if parsed.scheme.lower() == "file" else None


def backends() -> list[str]:
    """The backend names (URL schemes) the installed tooz offers."""
    return sorted({entry.name for entry in entry_points(group="tooz.backends")})


def url_problem(url: str, known: Iterable[str] | None = None) -> str | None:
    """What is wrong with ``url`` as a coordination URL (None: nothing).

    The answer never quotes the URL: it may hold a password.
    """
    parsed = urlsplit(url.strip())
    if "://" not in url or not parsed.scheme:
        return f"not a URL of a coordination backend (e.g. {_EXAMPLE})"
    scheme = parsed.scheme.lower()
    names = sorted(known) if known is not None else backends()
    if scheme not in names:
        return f"unknown coordination backend {scheme!r} (tooz offers: {', '.join(names)})"
    if scheme == "file":
        if parsed.netloc or not parsed.path.startswith("/"):
            return "a file:// URL names an absolute directory, e.g. file:///var/lock/glancesync"
        return None
    if "," in parsed.netloc:
        return None  # several servers (ZooKeeper's host1:2181,host2:2181): tooz reads them
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"the port of the {scheme}:// URL is not a number between 0 and 65535"
    if scheme in _NEEDS_HOST and not parsed.hostname:
        return f"a {scheme}:// URL names its server, e.g. {scheme}://127.0.0.1"
    return None


def redact(url: str) -> str:
    """``url`` fit for a log line: no password in it, nor in its query."""
    parsed = urlsplit(url)
    netloc = parsed.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = [
        (name, "***" if any(word in name.lower() for word in _SECRET_WORDS) else value)
        for name, value in parse_qsl(parsed.query, keep_blank_values=True)
    ]
    return urlunsplit(
        (parsed.scheme, netloc, parsed.path, urlencode(query, safe="*"), parsed.fragment)
    )


def probe_address(url: str) -> tuple[str, int] | None:
    """The one TCP address to try before starting, or None (a file, a Unix socket,
    several servers)."""
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parsed.hostname or "," in parsed.netloc:
        return None
    try:
        port = parsed.port
    except ValueError:
        return None
    return parsed.hostname, port or _DEFAULT_PORTS[scheme]


def default_member_id() -> str:
    """``host/pid``: who a member is, as logs and ``GET /agents`` show it."""
    return f"{socket.gethostname()}/{os.getpid()}"


def driver_options(heartbeat_timeout: float | None) -> dict[str, str]:
    """tooz options that make a member (and its locks) expire ``heartbeat_timeout``
    seconds after its last heartbeat; the drivers that have no such notion ignore them."""
    if heartbeat_timeout is None:
        return {}
    seconds = str(max(1, math.ceil(heartbeat_timeout)))
    return {"membership_timeout": seconds, "lock_timeout": seconds}


def assign(
    regions: Iterable[str], members: Iterable[str], partitions: int = PARTITIONS
) -> dict[str, str]:
    """Each region's owner among ``members``, by the consistent hash ring tooz's
    partitioner uses (the same answer every member computes); {} without members."""
    from tooz import hashring

    ring = hashring.HashRing([member.encode() for member in members], partitions=partitions)
    if not ring.nodes:
        return {}
    return {region: _one(ring.get_nodes(region.encode())) for region in regions}


def _one(nodes: Iterable[Any]) -> str:
    """The one member a ring answers ("" from an empty ring: nobody owns anything)."""
    node = next(iter(nodes), "")
    return node.decode() if isinstance(node, bytes) else str(node)


# --------------------------------------------------------------------------- the coordinator


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()  # "connection refused", as other error lines say
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Coordinator:
    """One member of the coordination at ``url``: locks, groups, partitions.

    A coordinator belongs to the process that started it (tooz's heartbeat is a thread
    and its connections are not fork-safe): a forked child starts its own.
    """

    def __init__(
        self,
        url: str,
        member_id: str | None = None,
        heartbeat_timeout: float | None = None,
    ):
        self.url = url
        self.member_id = member_id or default_member_id()
        self.heartbeat_timeout = heartbeat_timeout
        self._driver: Any = None
        self._partitions: dict[str, Any] = {}

    # ------------------------------------------------------------------ life

    @property
    def started(self) -> bool:
        return self._driver is not None

    def start(self) -> Coordinator:
        """Connect, and heartbeat in a thread (for the backends that need it)."""
        if self._driver is not None:
            return self
        problem = url_problem(self.url)
        if problem is not None:
            raise CoordinationUnavailable(f"coordination_url: {problem}")
        with self._translated("cannot start"):
            address = probe_address(self.url)
            if address is not None:
                socket.create_connection(address, timeout=PROBE_SECONDS).close()
            driver = _driver(self.url, self.member_id, driver_options(self.heartbeat_timeout))
            driver.start(start_heart=True)
        self._driver = driver
        return self

    def stop(self) -> None:
        """Leave every group and release every lock; never raises (a backend that is
        down forgets a member after its heartbeat timeout anyway)."""
        driver, self._driver = self._driver, None
        self._partitions.clear()
        if driver is None:
            return
        try:
            driver.stop()
        except Exception as error:  # noqa: BLE001 - stopping must not fail the caller
            logger.warning(
                "coordination backend %s: could not leave cleanly: %s",
                redact(self.url),
                _reason(error),
            )

    def heartbeat(self) -> None:
        """One heartbeat now (the thread beats anyway; an agent may beat after a pause)."""
        with self._translated("cannot heartbeat"):
            self._started().heartbeat()

    def run_watchers(self) -> None:
        """Apply the group changes seen since the last call (partitions follow them)."""
        with self._translated("cannot watch the groups"):
            self._started().run_watchers()

    # ------------------------------------------------------------------ locks

    def lock(self, name: str) -> Any:
        """A tooz lock (acquire it with :meth:`try_acquire`, release with :meth:`release`)."""
        with self._translated("cannot make a lock"):
            return self._started().get_lock(name.encode())

    def try_acquire(self, lock: Any) -> bool:
        """Take ``lock`` if it is free, without waiting."""
        with self._translated("cannot take a lock"):
            return bool(lock.acquire(blocking=False))

    def release(self, lock: Any) -> None:
        """Release ``lock``; a backend lost meanwhile is a warning (its lock expires)."""
        try:
            lock.release()
        except Exception as error:  # noqa: BLE001 - the work under the lock is done
            logger.warning(
                "coordination backend %s: could not release a region lock: %s",
                redact(self.url),
                _reason(error),
            )

    # ------------------------------------------------------------------ groups

    def join_group(self, group: str, capabilities: Mapping[str, Any] | None = None) -> None:
        """Join ``group`` (made if missing); joining twice is not an error."""
        from tooz import coordination

        driver = self._started()
        with self._translated(f"cannot join the group {group}"):
            with contextlib.suppress(coordination.GroupAlreadyExist):
                driver.create_group(group.encode()).get()
            with contextlib.suppress(coordination.MemberAlreadyExist):
                driver.join_group(group.encode(), dict(capabilities or {})).get()

    def leave_group(self, group: str) -> None:
        from tooz import coordination

        gone = (coordination.MemberNotJoined, coordination.GroupNotCreated)
        with self._translated(f"cannot leave the group {group}"), contextlib.suppress(*gone):
            self._started().leave_group(group.encode()).get()

    def members(self, group: str) -> set[str]:
        """The live members of ``group`` (an unknown group has none)."""
        from tooz import coordination

        with self._translated(f"cannot list the group {group}"):
            try:
                found = self._started().get_members(group.encode()).get()
            except coordination.GroupNotCreated:
                return set()
        return {member.decode() if isinstance(member, bytes) else member for member in found}

    def capabilities(self, group: str, member: str) -> Any:
        with self._translated(f"cannot read a member of the group {group}"):
            return self._started().get_member_capabilities(group.encode(), member.encode()).get()

    # ------------------------------------------------------------------ partitions

    def join_partition(self, group: str, weight: int = 1) -> Partition:
        """Join ``group``'s consistent hash ring; :meth:`run_watchers` keeps it current."""
        if group not in self._partitions:
            with self._translated(f"cannot join the partitioned group {group}"):
                self._partitions[group] = self._started().join_partitioned_group(
                    group.encode(), weight=weight, partitions=PARTITIONS
                )
        return Partition(self, self._partitions[group])

    def leave_partition(self, group: str) -> None:
        partitioner = self._partitions.pop(group, None)
        if partitioner is None:
            return
        with self._translated(f"cannot leave the partitioned group {group}"):
            self._started().leave_partitioned_group(partitioner)

    # ------------------------------------------------------------------ inside

    def _started(self) -> Any:
        if self._driver is None:
            raise RuntimeError("the coordinator is not started")
        return self._driver

    @contextlib.contextmanager
    def _translated(self, what: str) -> Any:
        """A backend's failure becomes one line naming the backend (no password)."""
        try:
            yield
        except CoordinationUnavailable:
            raise
        except Exception as error:  # tooz and its clients raise anything: sorted below
            if not _is_backend_failure(error):
                raise
            raise CoordinationUnavailable(
                f"coordination backend {redact(self.url)}: {what}: {_reason(error)}"
            ) from None


def _driver(url: str, member_id: str, options: Mapping[str, str]) -> Any:
    """tooz's driver for ``url``, made as ``tooz.coordination.get_coordinator`` makes it
    (``options`` over the URL's query), but found through importlib.metadata: stevedore,
    which get_coordinator uses, writes a cache of entry points under ~/.cache, and a
    sync writes nothing outside its working directory and lock directory."""
    from oslo_utils import netutils

    parsed = netutils.urlsplit(url)
    merged: dict[str, list[str]] = {name: [value] for name, value in options.items()}
    for name, values in parse_qs(parsed.query).items():
        merged.setdefault(name, values)
    entry = next(iter(entry_points(group="tooz.backends", name=parsed.scheme)))  # see start
    # The drivers import futurist, which imports eventlet where it is installed (the
    # agent's oslo.messaging brings it). tooz runs no eventlet, and eventlet imported
    # from a thread other than the main one leaves that thread impossible to join (a
    # service worker's sync, an agent's loop), besides warning on stderr that it is
    # deprecated. Unless something imported it already, futurist is shown none.
    hidden = "eventlet" not in sys.modules
    if hidden:
        sys.modules["eventlet"] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            driver_class = entry.load()
    finally:
        if hidden and sys.modules.get("eventlet", "") is None:
            del sys.modules["eventlet"]
    return driver_class(member_id.encode(), parsed, merged)


def _is_backend_failure(error: BaseException) -> bool:
    """tooz's errors, a missing driver library, an unreachable server; not our bugs."""
    import tooz

    return isinstance(error, tooz.ToozError | ImportError | OSError | ConnectionError)


class Partition:
    """This member's view of a partitioned group: who owns which region."""

    def __init__(self, coordinator: Coordinator, partitioner: Any):
        self._coordinator = coordinator
        self._partitioner = partitioner

    def owner(self, region: str) -> str:
        """The member that owns ``region`` (the same answer for every member); "" while
        the group has no member (this one's own membership lapsed, say)."""
        return _one(self._partitioner.members_for_object(region))

    def owned(self, regions: Iterable[str]) -> list[str]:
        """Those of ``regions`` this member owns, in their order."""
        me = self._coordinator.member_id
        return [region for region in regions if self.owner(region) == me]

    def assignment(self, regions: Iterable[str]) -> dict[str, str]:
        return {region: self.owner(region) for region in regions}
