"""Carry out a :class:`RegionPlan` through a facade, one logged action at a time.

Order: obsolete updates, metadata updates, transfers (ascending size, kernels and
ramdisks first), AMI id fixes. A replaced image is deleted only after its replacement
is verified. With ``dry_run`` nothing is changed and every action is only logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fiwareglancesync.errors import RegionError
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.image import AMI_PROPERTIES, Image
from fiwareglancesync.plan import (
    PENDING_AMI,
    PENDING_METADATA,
    PENDING_RENAME,
    PENDING_REPLACE,
    ImageStatus,
    RegionPlan,
)
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

DataOpener = Callable[[Image], ImageData | None]


@dataclass
class RegionResult:
    region: RegionRef
    uploaded_bytes: int = 0
    uploaded_images: int = 0
    pending_bytes: int = 0
    changes: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # the plan's, before acting


class _Executor:
    def __init__(
        self,
        plan: RegionPlan,
        facade: Facade,
        open_data: DataOpener,
        dry_run: bool,
    ):
        self.plan = plan
        self.facade = facade
        self.region = plan.region
        self.open_data = open_data
        self.dry_run = dry_run
        self.result = RegionResult(plan.region)
        self.name = plan.region.fullname
        # Regional ids by name, updated as images are uploaded, to rewrite AMI ids.
        self.regional_ids = {
            entry.name: entry.regional.id for entry in plan.statuses if entry.regional
        }
        self.master_names = {image.id: image.name for image in plan.master_images}

    def run(self) -> RegionResult:
        self.result.statuses = dict(Counter(entry.status for entry in self.plan.statuses))
        if self.plan.is_synchronised:
            logger.info("%s: Region is synchronized.", self.name)
            return self.result
        for update in self.plan.obsolete_updates:
            logger.info("%s: updating obsolete image %s", self.name, update.desired.name)
            self._update(update.desired)
        for entry in self.plan.with_status(PENDING_METADATA):
            self._update_metadata(entry)
        for entry in self.plan.transfers:
            self._transfer(entry)
        for entry in self.plan.with_status(PENDING_AMI):
            self._update_metadata(entry)
        if self.dry_run:
            logger.info("%s: MBs pending : %d", self.name, self.result.pending_bytes // 1048576)
        else:
            logger.info(
                "%s:   Total uploaded to region: %d (MB)",
                self.name,
                self.result.uploaded_bytes // 1048576,
            )
        return self.result

    def _update(self, image: Image) -> None:
        self.result.changes += 1
        if not self.dry_run:
            self.facade.update(self.region, image)

    # ------------------------------------------------------------------- metadata

    def _update_metadata(self, entry: ImageStatus) -> None:
        assert entry.regional is not None
        if self.dry_run:
            logger.info("%s: Image pending to update the metadata %s", self.name, entry.name)
        else:
            logger.info("%s: Updating the metadata of image %s", self.name, entry.name)
        properties = dict(entry.regional.user_properties)
        keys = self.plan.metadata_set or entry.master.user_properties.keys()
        for key in keys:
            if key in AMI_PROPERTIES:
                continue
            if key in entry.master.user_properties:
                properties[key] = entry.master.user_properties[key]
            else:
                properties.pop(key, None)
        self._set_ami_ids(entry.master, properties)
        self._update(
            entry.regional.copy(is_public=entry.master.is_public, user_properties=properties)
        )

    def _set_ami_ids(self, master: Image, properties: dict) -> None:
        """Point kernel_id/ramdisk_id at this region's copies of the master's images."""
        for prop in AMI_PROPERTIES:
            wanted = master.user_properties.get(prop)
            if not wanted:
                properties.pop(prop, None)
                continue
            name = self.master_names.get(str(wanted), str(wanted))
            regional_id = self.regional_ids.get(name)
            if regional_id is None:
                logger.warning(
                    "%s: Not found %s on region. It should be %s of image %s",
                    self.name,
                    name,
                    prop,
                    master.name,
                )
                properties.pop(prop, None)
            else:
                properties[prop] = regional_id

    # ------------------------------------------------------------------- transfers

    def _transfer(self, entry: ImageStatus) -> None:
        megabytes = entry.master.size_mb
        if self.dry_run:
            logger.info("%s: Pending: %s (%d MB)", self.name, entry.name, megabytes)
            self.result.pending_bytes += entry.size
            return
        if entry.status == PENDING_REPLACE:
            logger.info("%s: Replacing image %s (%d MB)", self.name, entry.name, megabytes)
        elif entry.status == PENDING_RENAME:
            logger.info(
                "%s: Renaming and replacing image %s (%d MB)",
                self.name,
                entry.name,
                megabytes,
            )
        else:
            logger.info("%s: Uploading image %s (%d MB)", self.name, entry.name, megabytes)
        created = self._upload(entry.master)
        self.regional_ids[entry.name] = created.id
        self.result.uploaded_bytes += entry.size
        self.result.uploaded_images += 1
        self.result.changes += 1
        logger.info("%s: Image uploaded.", self.name)
        old = entry.regional
        if old is not None and entry.status == PENDING_REPLACE:
            self.facade.delete(self.region, old.id)
        elif old is not None and entry.status == PENDING_RENAME:
            self.facade.update(self.region, old.copy(name=old.name + ".old", is_public=False))

    def _upload(self, master: Image) -> Image:
        if self.plan.metadata_set:
            properties = {
                key: value
                for key, value in master.user_properties.items()
                if key in self.plan.metadata_set and key not in AMI_PROPERTIES
            }
        else:
            properties = {
                k: v for k, v in master.user_properties.items() if k not in AMI_PROPERTIES
            }
        self._set_ami_ids(master, properties)
        wanted = master.copy(id="", owner="", region=self.name, user_properties=properties)
        data = self.open_data(master)
        try:
            created = self.facade.upload(self.region, wanted, data)
        finally:
            if data is not None:
                data.close()
        if created.status != "active" or created.checksum != master.checksum:
            raise RegionError(
                f"the upload of {master.name} ended {created.status} with checksum "
                f"{created.checksum}, expected active with {master.checksum}"
            )
        return created


def apply_plan(
    plan: RegionPlan,
    facade: Facade,
    open_data: DataOpener,
    dry_run: bool = False,
) -> RegionResult:
    """Execute ``plan`` in its region, through the facade of the region's target."""
    return _Executor(plan, facade, open_data, dry_run).run()
