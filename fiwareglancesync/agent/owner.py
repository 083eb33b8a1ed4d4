"""Which regions an agent works on: an :class:`Owner`'s answer, asked before each action.

The default, :class:`OwnsEverything`, is an agent alone: it owns every region. A
coordination layer (agents that split the regions between them) plugs its own Owner in
through ``main(owner_factory=...)``: the agent asks it for its share of the regions
before an audit and before each batch of changes, and syncs nothing else. An owner that
cannot tell (its backend is down) answers with no region: the agent then syncs nothing
until it can. The region lock is not the owner's business: ``GlanceSync.sync`` takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from fiwareglancesync.config import Config
from fiwareglancesync.region import RegionRef


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
