"""Which regions an agent works on: an :class:`Owner`'s answer, asked before each action.

The default, :class:`OwnsEverything`, is an agent alone: it owns every region. A
coordination layer (agents that split the regions between them) plugs its own Owner in
through ``main(owner_factory=...)``: the agent asks it for its share of the regions
before an audit and before each batch of changes, and syncs nothing else. An owner that
cannot tell (its backend is down) answers with no region: the agent then syncs nothing
until it can. The region lock is not the owner's business: ``GlanceSync.sync`` takes it.

:func:`default_owner`, the agent's own choice: with a ``coordination_url`` of several
hosts (Redis, ZooKeeper, etcd...) a :class:`PartitionOwner`, one member of the group
``glancesync-agents`` split by tooz's partitioner (each region has exactly one owner
among the live agents; a member silent for ``heartbeat_timeout`` seconds drops out and
its regions move); otherwise (``file://``, one host) :class:`OwnsEverything`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol
from urllib.parse import urlsplit

from fiwareglancesync.config import Config
from fiwareglancesync.coordination import CoordinationUnavailable, Coordinator, Partition
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)


class Owner(Protocol):
    def owned(self, regions: Sequence[RegionRef]) -> list[RegionRef]:
        """The regions of ``regions`` this agent is to sync now, in their order."""

    def close(self) -> None:
        """The agent is stopping (or reloading its configuration): let go."""


class OwnsEverything:
    """An agent alone: every region is its own."""

    def owned(self, regions: Sequence[RegionRef]) -> list[RegionRef]:
        return list(regions)

    def close(self) -> None:
        pass


OwnerFactory = Callable[[Config], Owner]


def owns_everything(config: Config) -> Owner:
    return OwnsEverything()


# --------------------------------------------------------------------------- several agents

AGENTS_GROUP = "glancesync-agents"
# Backends that never expire a member that died (one host): an agent alone there owns
# every region, as before coordination existed.
_LOCAL_BACKENDS = {"file", "ipc"}


def has_groups(url: str | None) -> bool:
    """Whether ``url`` names a backend where several agents split the regions."""
    return bool(url) and urlsplit(url or "").scheme.lower() not in _LOCAL_BACKENDS


class PartitionOwner:
    """One member of the agents' group: it owns the regions tooz's partitioner gives it.

    The coordinator starts at the first question (a backend that is down then is one
    ERROR line, no region owned, and a new try at each question); each question runs
    the group's watchers first, so members that joined or expired move regions at once.
    """

    def __init__(self, url: str, heartbeat_timeout: float, group: str = AGENTS_GROUP):
        self._coordinator = Coordinator(url, heartbeat_timeout=heartbeat_timeout)
        self._group = group
        self._partition: Partition | None = None
        self._failing = False
        self._mine: set[str] | None = None

    @property
    def member_id(self) -> str:
        return self._coordinator.member_id

    def owned(self, regions: Sequence[RegionRef]) -> list[RegionRef]:
        try:
            partition = self._joined()
            self._coordinator.run_watchers()
            names = set(partition.owned(region.fullname for region in regions))
        except CoordinationUnavailable as error:
            if not self._failing:
                logger.error("No region is synchronised until it is back: %s", error)
            self._failing = True
            self._drop()
            return []
        if self._failing:
            logger.info("The coordination backend is back: regions are split again")
        self._failing = False
        self._log_changes(names, [region.fullname for region in regions])
        return [region for region in regions if region.fullname in names]

    def close(self) -> None:
        """Leave the group (the others take this agent's regions at once)."""
        if self._partition is not None:
            with contextlib.suppress(CoordinationUnavailable):
                self._coordinator.leave_partition(self._group)
        self._partition = None
        self._coordinator.stop()

    def _joined(self) -> Partition:
        if self._partition is None:
            self._coordinator.start()
            self._partition = self._coordinator.join_partition(self._group)
            logger.info("Joined the agents' group %s as %s", self._group, self.member_id)
        return self._partition

    def _drop(self) -> None:
        """Forget a coordinator whose backend failed: the next question starts anew."""
        self._partition = None
        self._coordinator.stop()

    def _log_changes(self, names: set[str], order: list[str]) -> None:
        """One line per region gained or lost since the last answer."""
        before = self._mine if self._mine is not None else set()
        for name in order:
            if name in names and name not in before:
                logger.info(
                    "Owner change: region %s is now this agent's (%s)", name, self.member_id
                )
            elif name in before and name not in names:
                logger.info("Owner change: region %s went to another agent", name)
        self._mine = names


def default_owner(config: Config) -> Owner:
    """Several agents split the regions on a backend of several hosts; else one owns all."""
    if has_groups(config.coordination_url):
        assert config.coordination_url is not None
        return PartitionOwner(config.coordination_url, config.heartbeat_timeout)
    return OwnsEverything()
