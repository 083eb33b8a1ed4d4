"""Decide what a region needs: a pure function of master images, regional images and config.

Nothing here talks to a cloud or writes a log: log lines are returned as ``notices``
and the caller emits them. ``--show-status``, ``--dry-run``, the REST status and the real
sync all read the same :class:`RegionPlan`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fiwareglancesync.config import TargetConfig
from fiwareglancesync.image import AMI_PROPERTIES, Image, same_owner

OBSOLETE_SUFFIX = "_obsolete"

OK = "ok"
OK_STALLED = "ok_stalled_checksum"
ERROR_CHECKSUM = "error_checksum"
ERROR_AMI = "error_ami"
PENDING_UPLOAD = "pending_upload"
PENDING_REPLACE = "pending_replace"
PENDING_RENAME = "pending_rename"
PENDING_METADATA = "pending_metadata"
PENDING_AMI = "pending_ami"
STATUSES = (
    OK,
    OK_STALLED,
    ERROR_CHECKSUM,
    ERROR_AMI,
    PENDING_UPLOAD,
    PENDING_REPLACE,
    PENDING_RENAME,
    PENDING_METADATA,
    PENDING_AMI,
)
TRANSFERS = frozenset({PENDING_UPLOAD, PENDING_REPLACE, PENDING_RENAME})

Notice = tuple[int, str]  # (logging level, message)


@dataclass(frozen=True)
class ImageStatus:
    """The sync status of one master image in one region."""

    status: str
    region: str
    master: Image
    regional: Image | None = None
    message: str | None = None

    @property
    def name(self) -> str:
        return self.master.name

    @property
    def size(self) -> int:
        return self.master.size

    def row(self) -> str:
        return f"{self.status},{self.region},{self.name}"


@dataclass(frozen=True)
class ObsoleteUpdate:
    """A regional image to rename to ``X_obsolete`` or to keep in step with it."""

    current: Image
    desired: Image


@dataclass
class RegionPlan:
    region: str
    statuses: list[ImageStatus]
    transfers: list[ImageStatus]
    obsolete_updates: list[ObsoleteUpdate]
    notices: list[Notice]
    regional_images: list[Image]
    master_images: list[Image]
    metadata_set: frozenset[str] = field(default_factory=frozenset)

    def with_status(self, *statuses: str) -> list[ImageStatus]:
        return [entry for entry in self.statuses if entry.status in statuses]

    @property
    def is_synchronised(self) -> bool:
        return not (
            self.obsolete_updates
            or self.transfers
            or self.with_status(PENDING_METADATA, PENDING_AMI)
        )


# --------------------------------------------------------------------------- master


def filter_master_images(
    images: Iterable[Image], project_id: str | None
) -> tuple[list[Image], list[Notice]]:
    """Keep active, named master images of the master project with a unique name."""
    candidates = [
        image
        for image in images
        if image.status == "active"
        and image.name
        and (not image.owner or same_owner(image.owner, project_id))
    ]
    counts = Counter(image.name for image in candidates)
    notices: list[Notice] = []
    for name, count in counts.items():
        if count > 1:
            notices.append((logging.WARNING, f"Duplicated images with name {name} will be ignored"))
    return [image for image in candidates if counts[image.name] == 1], notices


def is_synchronisable(image: Image, target: TargetConfig) -> bool:
    """The selection rules, in their documented order."""
    if image.name.endswith(OBSOLETE_SUFFIX):
        return False
    if image.id in target.forcesyncs:
        return True
    if target.metadata_condition is not None:
        return target.metadata_condition.evaluate(image, target.metadata_set)
    if not image.is_public:
        return False
    if not target.metadata_set:
        return True
    return not target.metadata_set.isdisjoint(image.user_properties)


def select_images(master_images: Iterable[Image], target: TargetConfig) -> list[Image]:
    return [image for image in master_images if is_synchronisable(image, target)]


# --------------------------------------------------------------------------- regional


def _normalise(value: Any) -> str | None:
    # Glance v2 stores property values as strings: 1 and '1' are the same value.
    return None if value is None else str(value)


class _Region:
    """The regional images GlanceSync considers, chosen once per plan."""

    def __init__(
        self,
        region: str,
        images: Sequence[Image],
        target: TargetConfig,
        project_id: str | None,
        master_by_name: dict[str, Image],
    ):
        self.region = region
        self.notices: list[Notice] = []
        self.names_by_id = {image.id: image.name for image in images}
        self.chosen: dict[str, Image] = {}
        candidates: dict[str, list[Image]] = {}
        for image in images:
            if self._considered(image, target, project_id, master_by_name):
                candidates.setdefault(image.name, []).append(image)
        for name, found in candidates.items():
            self.chosen[name] = self._choose(name, found, master_by_name.get(name))

    def _considered(
        self,
        image: Image,
        target: TargetConfig,
        project_id: str | None,
        master_by_name: dict[str, Image],
    ) -> bool:
        if not image.name:
            return False
        relevant = image.name in master_by_name
        if target.only_tenant_images and image.owner and not same_owner(image.owner, project_id):
            if relevant:
                self.notices.append(
                    (
                        logging.WARNING,
                        f"{self.region}: image {image.name} (UUID {image.id}) is owned by "
                        f"other tenant: {image.owner}",
                    )
                )
            return False
        if image.status != "active":
            if relevant:
                self.notices.append(
                    (
                        logging.WARNING,
                        f"{self.region}: state of image {image.name} with UUID {image.id}  "
                        f"is not active: {image.status}",
                    )
                )
            return False
        return True

    def _choose(self, name: str, found: list[Image], master: Image | None) -> Image:
        chosen = found[0]
        if master is not None:
            chosen = next((i for i in found if i.checksum == master.checksum), found[0])
        if master is not None and len(found) > 1:
            for other in found:
                if other is not chosen:
                    self.notices.append(
                        (
                            logging.WARNING,
                            f"{self.region}: image name {name} is duplicated. "
                            f"UUIDs: {other.id} {chosen.id}",
                        )
                    )
        return chosen


# --------------------------------------------------------------------------- statuses


def _checksum_directive(checksum: str | None, target: TargetConfig) -> str:
    """The one documented order: dontupdate, rename, replace, rename any, replace any."""
    if checksum in target.dontupdate:
        return OK_STALLED
    if checksum in target.rename:
        return PENDING_RENAME
    if checksum in target.replace:
        return PENDING_REPLACE
    if "any" in target.rename:
        return PENDING_RENAME
    if "any" in target.replace:
        return PENDING_REPLACE
    return ERROR_CHECKSUM


def ami_dependencies(image: Image) -> list[tuple[str, str]]:
    """``(property, master id)`` for each kernel/ramdisk the image needs."""
    return [
        (prop, str(image.user_properties[prop]))
        for prop in AMI_PROPERTIES
        if image.user_properties.get(prop)
    ]


class _Planner:
    def __init__(
        self,
        region: str,
        master_images: list[Image],
        selected: list[Image],
        regional_images: list[Image],
        target: TargetConfig,
        project_id: str | None,
    ):
        self.region_name = region
        self.target = target
        self.project_id = project_id
        self.master_images = master_images
        self.master_by_id = {image.id: image for image in master_images}
        self.selected = sorted(selected, key=lambda image: (image.size, image.name))
        self.selected_ids = {image.id for image in selected}
        master_by_name = {image.name: image for image in self.selected}
        self.regional_images = regional_images
        self.region = _Region(region, regional_images, target, project_id, master_by_name)
        self.notices = self.region.notices

    def plan(self) -> RegionPlan:
        self._first = {image.id: self._content_status(image) for image in self.selected}
        self._finals: dict[str, ImageStatus] = {}
        self._visiting: set[str] = set()
        statuses = [self._final(image) for image in self.selected]
        transfers = _transfer_order(
            [s for s in statuses if s.status in TRANSFERS], self.master_by_id
        )
        return RegionPlan(
            region=self.region_name,
            statuses=statuses,
            transfers=transfers,
            obsolete_updates=self._obsolete_updates(),
            notices=self.notices,
            regional_images=self.regional_images,
            master_images=self.master_images,
            metadata_set=self.target.metadata_set,
        )

    def _status(self, status: str, master: Image, message: str | None = None) -> ImageStatus:
        regional = self.region.chosen.get(master.name)
        return ImageStatus(status, self.region_name, master, regional, message)

    def _content_status(self, master: Image) -> ImageStatus:
        """Present or not, same content or not: everything but AMI and metadata."""
        regional = self.region.chosen.get(master.name)
        if regional is None:
            return self._status(PENDING_UPLOAD, master)
        if regional.checksum == master.checksum:
            return self._status(OK, master)
        status = _checksum_directive(regional.checksum, self.target)
        message = f"checksum {regional.checksum} in the region, {master.checksum} in the master"
        if status == ERROR_CHECKSUM:
            self.notices.append(
                (
                    logging.WARNING,
                    f"Image {master.name} has a different checksum ({regional.checksum}) in "
                    f"region {self.region_name} than in the master region. It was not set "
                    "what to do. Please, fill either dontupdate, replace or rename with the "
                    "checksum.",
                )
            )
        return self._status(status, master, message)

    def _final(self, master: Image) -> ImageStatus:
        """The final status, computed once; a kernel's before the images that need it."""
        if master.id in self._finals:
            return self._finals[master.id]
        if master.id in self._visiting:  # a dependency cycle: stop at the content status
            return self._first[master.id]
        self._visiting.add(master.id)
        status = self._finals[master.id] = self._final_status(master)
        self._visiting.discard(master.id)
        return status

    def _final_status(self, master: Image) -> ImageStatus:
        status = self._unprotected_status(master)
        regional = status.regional
        if regional is None or not regional.owner or same_owner(regional.owner, self.project_id):
            return status
        protected = _leave_foreign_alone(status, regional.owner)
        if protected is not status:
            self.notices.append(
                (
                    logging.WARNING,
                    f"{self.region_name}: image {master.name} (UUID {regional.id}) is owned by "
                    f"other tenant: {regional.owner}; it is left as it is",
                )
            )
        return protected

    def _unprotected_status(self, master: Image) -> ImageStatus:
        content = self._first[master.id]
        missing = self._missing_dependency(master)
        if missing is not None:
            return self._status(ERROR_AMI, master, missing)
        if content.status != OK:
            return content
        for prop, dependency_id in ami_dependencies(master):
            if dependency_id not in self.selected_ids:
                return self._status(
                    ERROR_AMI,
                    master,
                    f"its {prop} {self.master_by_id[dependency_id].name} is not synchronised "
                    "to this region",
                )
            dependency = self._final(self.master_by_id[dependency_id])
            if dependency.status in TRANSFERS:
                return self._status(PENDING_AMI, master)
            if dependency.status == ERROR_AMI:
                return self._status(
                    ERROR_AMI, master, f"its {prop} {dependency.name} is error_ami itself"
                )
        if self._metadata_differs(master, content.regional):
            return self._status(PENDING_METADATA, master)
        return content

    def _missing_dependency(self, master: Image) -> str | None:
        for prop, dependency_id in ami_dependencies(master):
            if dependency_id not in self.master_by_id:
                return f"its {prop} {dependency_id} is not an active image of the master region"
        return None

    def _metadata_differs(self, master: Image, regional: Image | None) -> bool:
        assert regional is not None
        if bool(master.is_public) != bool(regional.is_public):
            return True
        mine, theirs = master.user_properties, regional.user_properties
        keys = self.target.metadata_set or mine.keys()
        for key in keys:
            if key not in AMI_PROPERTIES and _normalise(mine.get(key)) != _normalise(
                theirs.get(key)
            ):
                return True
        for prop in AMI_PROPERTIES:
            wanted, actual = mine.get(prop), theirs.get(prop)
            if bool(wanted) != bool(actual):
                return True
            if wanted and self._master_name(wanted) != self.region.names_by_id.get(str(actual)):
                return True
        return False

    def _master_name(self, image_id: Any) -> str:
        image = self.master_by_id.get(str(image_id))
        return image.name if image is not None else str(image_id)

    # ------------------------------------------------------------------- obsolete

    def _obsolete_updates(self) -> list[ObsoleteUpdate]:
        if not self.target.support_obsolete_images:
            return []
        selected_names = {image.name for image in self.selected}
        updates: list[ObsoleteUpdate] = []
        for master in self.master_images:
            if not master.name.endswith(OBSOLETE_SUFFIX):
                continue
            base = master.name[: -len(OBSOLETE_SUFFIX)]
            if base in selected_names:
                self.notices.append(
                    (
                        logging.WARNING,
                        f"Ignore obsolete master image {master.name} because {base} exists "
                        "and it is synchronisable.",
                    )
                )
                continue
            updates.extend(self._obsolete_updates_of(master, base))
        return updates

    def _obsolete_updates_of(self, master: Image, base: str) -> Iterable[ObsoleteUpdate]:
        for regional in self.regional_images:
            if (
                regional.name in (base, master.name)
                and regional.status == "active"
                and regional.checksum == master.checksum
                and (not regional.owner or same_owner(regional.owner, self.project_id))
            ):
                desired = obsolete_image(regional, master, self.target.obsolete_syncprops)
                if desired != regional:
                    yield ObsoleteUpdate(regional, desired)


def obsolete_image(regional: Image, master: Image, syncprops: Iterable[str]) -> Image:
    """The regional image renamed like the master, with its visibility and syncprops."""
    properties = dict(regional.user_properties)
    for prop in syncprops:
        if prop in master.user_properties:
            properties[prop] = master.user_properties[prop]
        else:
            properties.pop(prop, None)
    return regional.copy(name=master.name, is_public=master.is_public, user_properties=properties)


def _leave_foreign_alone(status: ImageStatus, owner: str) -> ImageStatus:
    """Another project's image (only_tenant_images = false) counts, but is never changed.

    Its metadata is left as it is (``ok``), and a different content needs a person
    (``error_checksum``) whatever replace/rename say: deleting or renaming another
    project's image is not GlanceSync's call.
    """
    if status.status in (PENDING_METADATA, PENDING_AMI):
        message = f"owned by project {owner}: its metadata is left as it is"
        return ImageStatus(OK, status.region, status.master, status.regional, message)
    if status.status in (PENDING_REPLACE, PENDING_RENAME):
        message = f"owned by project {owner}: not replaced; {status.message}"
        return ImageStatus(ERROR_CHECKSUM, status.region, status.master, status.regional, message)
    return status


def _transfer_order(
    transfers: list[ImageStatus], master_by_id: dict[str, Image]
) -> list[ImageStatus]:
    """Ascending size, but every kernel/ramdisk before the images that need it."""
    by_id = {entry.master.id: entry for entry in transfers}
    ordered: list[ImageStatus] = []
    placed: set[str] = set()

    def place(entry: ImageStatus, path: frozenset[str]) -> None:
        if entry.master.id in placed or entry.master.id in path:
            return  # already placed, or a dependency cycle: keep size order
        for _, dependency_id in ami_dependencies(entry.master):
            if dependency_id in by_id:
                place(by_id[dependency_id], path | {entry.master.id})
        placed.add(entry.master.id)
        ordered.append(entry)

    for entry in sorted(transfers, key=lambda e: (e.size, e.name)):
        place(entry, frozenset())
    return ordered


def plan_region(
    region: str,
    master_images: list[Image],
    regional_images: list[Image],
    target: TargetConfig,
    project_id: str | None,
    selected: list[Image] | None = None,
) -> RegionPlan:
    """The statuses and actions of one region.

    ``master_images`` are the kept master images (:func:`filter_master_images`);
    ``selected`` may be passed when already computed for the target.
    """
    if selected is None:
        selected = select_images(master_images, target)
    planner = _Planner(region, master_images, selected, regional_images, target, project_id)
    return planner.plan()
