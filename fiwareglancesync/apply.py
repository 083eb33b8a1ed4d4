"""Run the actions of a :class:`RegionPlan` through a facade, one logged action at a time.

The plan decided everything; the executor only resolves the kernel and ramdisk names of
each action to this region's ids (a kernel uploaded earlier in the run has one by then),
runs the action, and logs it in the words operators grep for. A replaced image is deleted
only after its replacement is verified. ``--dry-run`` does not come here: it prints the
plan (:mod:`dryrun`).

An image the pre-flight checks refuse (:class:`PreflightRefused`) is logged in one line
and skipped, the region's other actions go on, and the region then fails with one
ImagesRefused (a RegionError) counting them and carrying what was done.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
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
from fiwareglancesync.plan import RegionPlan
from fiwareglancesync.preflight import NOTHING_PLANNED, Planned

logger = logging.getLogger(__name__)

StatusesOf = Callable[[list[Image]], dict[str, int]]


class Sender(Protocol):
    """How a master image gets into the region (see :mod:`transfers`)."""

    streamed_bytes: int  # what went through this host so far (a glance-download: none)

    def method(self, master: Image) -> str:
        """The transfer method this image would use: glance-download, file or stream."""

    def check(self, master: Image, method: str, planned: Planned = NOTHING_PLANNED) -> None:
        """Raise PreflightRefused if ``master`` cannot land in the region by ``method``
        (``planned``: what a dry run would have sent before it)."""

    def send(self, master: Image, wanted: Image) -> Image:
        """Copy ``master`` into the region as ``wanted``; return the image created.

        Raises PreflightRefused, having changed nothing, if the image cannot land.
        """


def log_not_found(region: str, master_name: str, prop: str, image_name: str) -> None:
    """The warning for a kernel or ramdisk the region lacks: the image goes without it."""
    logger.warning(
        "%s: Not found %s on region. It should be %s of image %s",
        region,
        master_name,
        prop,
        image_name,
    )


class _Executor:
    def __init__(
        self,
        plan: RegionPlan,
        facade: Facade,
        sender: Sender,
        regional: list[Image],
        statuses_of: StatusesOf,
    ):
        self.plan = plan
        self.facade = facade
        self.sender = sender
        self.region = plan.region
        self.result = RegionFigures(plan.region.fullname)
        self.name = plan.region.fullname
        self.methods: dict[str, str] = {}
        self.refused: list[str] = []  # the images the pre-flight checks refused
        # The region's images as this run leaves them, kept up to date with every change
        # it makes: planned again at the end, they say what the run left behind.
        self.after = {image.id: image for image in regional}
        self.statuses_of = statuses_of
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
            if self.result.changes:  # else it left what it found
                self.result.left = self.statuses_of(list(self.after.values()))
        logger.info(
            "%s:   Total uploaded to region: %d (MB)",
            self.name,
            self.result.uploaded_bytes // 1048576,
        )
        if self.refused:
            raise ImagesRefused(self._refusals(), self.result)
        return self.result

    def _refusals(self) -> str:
        count = len(self.refused)
        images = "image" if count == 1 else "images"
        return f"{count} {images} refused before the transfer: {', '.join(self.refused)}"

    def _run(self, action: Action) -> None:
        if isinstance(action, ObsoleteUpdate):
            logger.info("%s: updating obsolete image %s", self.name, action.desired.name)
            self._update(action.desired)
        elif isinstance(action, UpdateMetadata):
            self._update_metadata(action)
        else:
            self._transfer(action)

    def _update(self, image: Image) -> None:
        self.result.changes += 1
        self.facade.update(self.region, image)
        self.after[image.id] = image

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
                log_not_found(self.name, master_name, prop, image_name)
            else:
                properties[prop] = regional_id
        return properties

    def _update_metadata(self, action: UpdateMetadata) -> None:
        logger.info("%s: Updating the metadata of image %s", self.name, action.name)
        properties = self._properties(action.desired, action.name)
        updated = action.regional.copy(
            is_public=action.desired.is_public, user_properties=properties
        )
        self._update(action.desired.fields.applied_to(updated))

    # ------------------------------------------------------------------- transfers

    def _transfer(self, action: Transfer) -> None:
        master = action.master
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
        self.after[created.id] = created
        self.result.uploaded_bytes += master.size
        self.result.uploaded_images += 1
        self.result.changes += 1
        logger.info("%s: Image uploaded.", self.name)
        old = action.old
        if old is not None and action.mode == REPLACE:
            self.facade.delete(self.region, old.id)
            self.after.pop(old.id, None)
        elif old is not None and action.mode == RENAME:
            renamed = old.copy(name=old.name + ".old", is_public=False)
            self.facade.update(self.region, renamed)
            self.after[old.id] = renamed


def apply_plan(
    plan: RegionPlan,
    facade: Facade,
    sender: Sender,
    regional: list[Image],
    statuses_of: StatusesOf,
) -> RegionFigures:
    """Run ``plan``'s actions in its region, through the facade of the region's target.

    ``regional`` is the region's listing the plan was made from; ``statuses_of`` counts
    the statuses of a region holding the images given (the planner's, on the same
    master), for the figures of what the run left behind.
    """
    return _Executor(plan, facade, sender, regional, statuses_of).run()
