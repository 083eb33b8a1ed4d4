"""Run the actions of a :class:`RegionPlan` through a facade, one logged action at a time.

The plan decided everything; the executor only resolves the kernel and ramdisk names of
each action to this region's ids (a kernel uploaded earlier in the run has one by then),
runs the action, and logs it in the words operators grep for. A replaced image is deleted
only after its replacement is verified. With ``dry_run`` nothing is changed: each action
is logged as it would have been, and described in one more line (``would upload X (N MB)
by stream``).

An image the pre-flight checks refuse (:class:`PreflightRefused`) is logged in one line
and skipped, the region's other actions go on, and the region then fails with one
ImagesRefused (a RegionError) counting them and carrying what was done. A dry run runs
the same checks (they read at most 1 MiB of each image), counting what it would already
have sent against the quota, and ends the same way, saying ``would refuse X before the
transfer: ...``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Protocol

from fiwareglancesync.actions import (
    RENAME,
    REPLACE,
    Action,
    Desired,
    ObsoleteUpdate,
    Transfer,
    UpdateMetadata,
)
from fiwareglancesync.errors import ImagesRefused, PreflightRefused, RegionError
from fiwareglancesync.facades.base import Facade
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.image import Image
from fiwareglancesync.plan import OK, RegionPlan
from fiwareglancesync.preflight import NOTHING_PLANNED, Planned

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """How a master image gets into the region (see :mod:`transfers`)."""

    streamed_bytes: int  # what went through this host so far (a glance-download: none)

    def method(self, master: Image) -> str:
        """The transfer method this image would use: glance-download, file or stream."""

    def check(self, master: Image, method: str, planned: Planned = NOTHING_PLANNED) -> None:
        """Raise PreflightRefused if ``master`` cannot land in the region by ``method``
        (``planned``: what the dry run would have sent before it)."""

    def send(self, master: Image, wanted: Image) -> Image:
        """Copy ``master`` into the region as ``wanted``; return the image created.

        Raises PreflightRefused, having changed nothing, if the image cannot land.
        """


class _Executor:
    def __init__(self, plan: RegionPlan, facade: Facade, sender: Sender, dry_run: bool):
        self.plan = plan
        self.facade = facade
        self.sender = sender
        self.region = plan.region
        self.dry_run = dry_run
        self.result = RegionFigures(plan.region.fullname)
        self.name = plan.region.fullname
        self.methods: dict[str, str] = {}
        self.refused: list[str] = []  # the images the pre-flight checks refused
        self.pending_images = 0  # a dry run's transfers that passed the checks
        # Per image name, the actions carried out; and the images that lack a kernel or
        # ramdisk they should point at: what the run leaves behind (see RegionFigures).
        self.done: Counter[str] = Counter()
        self.unresolved: set[str] = set()
        # Regional ids by image name, updated as images are uploaded: where the kernel
        # and ramdisk names of an action point in this region.
        self.regional_ids = {
            entry.name: entry.regional.id for entry in plan.statuses if entry.regional
        }

    def run(self) -> RegionFigures:
        self.result.found = dict(Counter(entry.status for entry in self.plan.statuses))
        self.result.left = dict(self.result.found)
        if self.plan.is_synchronised:
            logger.info("%s: Region is synchronized.", self.name)
            return self.result
        try:
            # Every transfer's method first: a region that cannot use a forced method
            # fails before anything in it has changed.
            self.methods = {t.name: self.sender.method(t.master) for t in self.plan.transfers}
            for action in self.plan.actions:
                self._run(action)
        finally:
            self.result.streamed_bytes = self.sender.streamed_bytes
            self.result.left = self._left_behind()
        if self.dry_run:
            logger.info("%s: MBs pending : %d", self.name, self.result.pending_bytes // 1048576)
        else:
            logger.info(
                "%s:   Total uploaded to region: %d (MB)",
                self.name,
                self.result.uploaded_bytes // 1048576,
            )
        if self.refused:
            raise ImagesRefused(self._refusals(), self.result)
        return self.result

    def _left_behind(self) -> dict[str, int]:
        """The statuses after acting: an image whose every action (but obsolete renames)
        was carried out, with every kernel and ramdisk it needs, is ok now."""
        planned = Counter(
            action.name for action in self.plan.actions if not isinstance(action, ObsoleteUpdate)
        )
        left: Counter[str] = Counter()
        for entry in self.plan.statuses:
            name = entry.name
            settled = 0 < planned[name] == self.done[name] and name not in self.unresolved
            left[OK if settled else entry.status] += 1
        return dict(left)

    def _refusals(self) -> str:
        count = len(self.refused)
        images = "image" if count == 1 else "images"
        verb = "would be refused" if self.dry_run else "refused"
        return f"{count} {images} {verb} before the transfer: {', '.join(self.refused)}"

    def _run(self, action: Action) -> None:
        if isinstance(action, ObsoleteUpdate):
            logger.info("%s: updating obsolete image %s", self.name, action.desired.name)
            self._describe(action)
            self._update(action.desired)
        elif isinstance(action, UpdateMetadata):
            self._update_metadata(action)
        else:
            self._transfer(action)

    def _describe(self, action: Action, method: str | None = None) -> None:
        if self.dry_run:
            logger.info("%s: %s", self.name, action.describe(method))

    def _update(self, image: Image) -> None:
        self.result.changes += 1
        if not self.dry_run:
            self.facade.update(self.region, image)

    # ------------------------------------------------------------------- metadata

    def _properties(self, desired: Desired, image_name: str) -> dict[str, Any]:
        """The desired properties, with this region's ids of its kernel and ramdisk."""
        properties = dict(desired.properties)
        for prop, master_name in desired.references().items():
            if not master_name:
                properties.pop(prop, None)
                continue
            regional_id = self.regional_ids.get(master_name)
            if regional_id is None:
                properties.pop(prop, None)
                self.unresolved.add(image_name)
                logger.warning(
                    "%s: Not found %s on region. It should be %s of image %s",
                    self.name,
                    master_name,
                    prop,
                    image_name,
                )
            else:
                properties[prop] = regional_id
        return properties

    def _update_metadata(self, action: UpdateMetadata) -> None:
        if self.dry_run:
            logger.info("%s: Image pending to update the metadata %s", self.name, action.name)
        else:
            logger.info("%s: Updating the metadata of image %s", self.name, action.name)
        self._describe(action)
        properties = self._properties(action.desired, action.name)
        updated = action.regional.copy(
            is_public=action.desired.is_public, user_properties=properties
        )
        self._update(action.desired.fields.applied_to(updated))
        if not self.dry_run:
            self.done[action.name] += 1

    # ------------------------------------------------------------------- transfers

    def _pending(self, action: Transfer) -> None:
        """A dry run's transfer: checked as the real one would be, and described."""
        master = action.master
        logger.info("%s: Pending: %s (%d MB)", self.name, action.name, master.size_mb)
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
        self._describe(action, method)
        self.pending_images += 1
        self.result.pending_bytes += master.size

    def _transfer(self, action: Transfer) -> None:
        master = action.master
        if self.dry_run:
            self._pending(action)
            return
        if action.mode == REPLACE:
            logger.info("%s: Replacing image %s (%d MB)", self.name, action.name, master.size_mb)
        elif action.mode == RENAME:
            logger.info(
                "%s: Renaming and replacing image %s (%d MB)",
                self.name,
                action.name,
                master.size_mb,
            )
        else:
            logger.info("%s: Uploading image %s (%d MB)", self.name, action.name, master.size_mb)
        wanted = action.wanted(self._properties(action.desired, action.name), self.name)
        try:
            created = self.sender.send(master, wanted)
        except PreflightRefused as refusal:
            # One line, and the region goes on; its end says how many were refused.
            logger.error("%s: %s", self.name, refusal)
            self.refused.append(action.name)
            return
        if created.status != "active" or created.checksum != master.checksum:
            raise RegionError(
                f"the upload of {master.name} ended {created.status} with checksum "
                f"{created.checksum}, expected active with {master.checksum}"
            )
        self.regional_ids[action.name] = created.id
        self.result.uploaded_bytes += master.size
        self.result.uploaded_images += 1
        self.result.changes += 1
        logger.info("%s: Image uploaded.", self.name)
        old = action.old
        if old is not None and action.mode == REPLACE:
            self.facade.delete(self.region, old.id)
        elif old is not None and action.mode == RENAME:
            self.facade.update(self.region, old.copy(name=old.name + ".old", is_public=False))
        self.done[action.name] += 1


def apply_plan(
    plan: RegionPlan, facade: Facade, sender: Sender, dry_run: bool = False
) -> RegionFigures:
    """Run ``plan``'s actions in its region, through the facade of the region's target."""
    return _Executor(plan, facade, sender, dry_run).run()
