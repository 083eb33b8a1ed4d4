"""``--dry-run``: a region's plan printed, action by action, in the order a sync runs them.

The printer gets no facade, so it cannot change a region. For each action it writes the
line the original tool's dry run wrote (``Pending: X (N MB)``, ``Image pending to update
the metadata X``) where there was one, then what the sync would do (``would upload X (N
MB) by stream``, ``would rename X to X_obsolete``).

What it says about kernels and ramdisks follows the sync: an image whose kernel the plan
uploads earlier in the region is not warned about; one whose kernel would still be
missing gets the sync's own ``Not found`` warning. The pre-flight checks run as in the
sync (they read at most 1 MiB of each image), counting what the run would already have
sent against the quota; a refused image is said (``would refuse X before the transfer:
...``), and the region then ends with ImagesRefused, as the sync would.
"""

from __future__ import annotations

import logging
from collections import Counter

from fiwareglancesync.actions import Action, Desired, ObsoleteUpdate, Transfer, UpdateMetadata
from fiwareglancesync.apply import Sender, log_not_found
from fiwareglancesync.errors import ImagesRefused, PreflightRefused
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.plan import RegionPlan
from fiwareglancesync.preflight import Planned

logger = logging.getLogger(__name__)


class _Printer:
    def __init__(self, plan: RegionPlan, sender: Sender):
        self.plan = plan
        self.sender = sender
        self.name = plan.region.fullname
        self.result = RegionFigures(plan.region.fullname)
        self.methods: dict[str, str] = {}
        self.refused: list[str] = []
        self.pending_images = 0  # the transfers that passed the checks
        # The image names the region would have when each action runs: those it has,
        # then each transfer that passed the checks (as the sync's regional ids grow).
        self.present = {entry.name for entry in plan.statuses if entry.regional}

    def run(self) -> RegionFigures:
        # A dry run changes nothing: it leaves what it found.
        self.result.found = dict(Counter(entry.status for entry in self.plan.statuses))
        self.result.left = dict(self.result.found)
        if self.plan.is_synchronised:
            logger.info("%s: Region is synchronized.", self.name)
            return self.result
        try:
            # As the sync: a region that cannot use a forced method fails before all else.
            self.methods = {t.name: self.sender.method(t.master) for t in self.plan.transfers}
            for action in self.plan.actions:
                self._print(action)
        finally:
            self.result.streamed_bytes = self.sender.streamed_bytes
        logger.info("%s: MBs pending : %d", self.name, self.result.pending_bytes // 1048576)
        if self.refused:
            raise ImagesRefused(self._refusals(), self.result)
        return self.result

    def _refusals(self) -> str:
        count = len(self.refused)
        images = "image" if count == 1 else "images"
        return f"{count} {images} would be refused before the transfer: {', '.join(self.refused)}"

    def _print(self, action: Action) -> None:
        if isinstance(action, ObsoleteUpdate):
            self._would(action)
            self.result.changes += 1
        elif isinstance(action, UpdateMetadata):
            logger.info("%s: Image pending to update the metadata %s", self.name, action.name)
            self._would(action)
            self._check_references(action.desired, action.name)
            self.result.changes += 1
        else:
            self._transfer(action)

    def _would(self, action: Action, method: str | None = None) -> None:
        logger.info("%s: %s", self.name, action.describe(method))

    def _check_references(self, desired: Desired, image_name: str) -> None:
        """The sync's warning for a kernel or ramdisk the region would not have."""
        for prop, master_name in desired.references().items():
            if master_name and master_name not in self.present:
                log_not_found(self.name, master_name, prop, image_name)

    def _transfer(self, action: Transfer) -> None:
        master = action.master
        logger.info("%s: Pending: %s (%d MB)", self.name, action.name, master.size_mb)
        self._check_references(action.desired, action.name)
        method = self.methods[action.name]
        planned = Planned(self.pending_images, self.result.pending_bytes)
        try:
            self.sender.check(master, method, planned)
        except PreflightRefused as refusal:
            logger.warning(
                "%s: would refuse %s before the transfer: %s",
                self.name,
                action.name,
                refusal.reason,
            )
            self.refused.append(action.name)
            return
        self._would(action, method)
        self.present.add(action.name)
        self.pending_images += 1
        self.result.pending_bytes += master.size


def print_plan(plan: RegionPlan, sender: Sender) -> RegionFigures:
    """Log what a sync of ``plan``'s region would do; change nothing.

    ``sender`` only says each transfer's method and runs the pre-flight checks.
    """
    return _Printer(plan, sender).run()
