"""Decide what a region needs: a pure function of master images, regional images and config.

Nothing here talks to a cloud or writes a log: log lines are returned as ``notices``
and the caller emits them. ``--show-status``, ``--dry-run``, the REST status and the real
sync all read the same :class:`RegionPlan`.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Generic, TypeVar

from fiwareglancesync import fields
from fiwareglancesync.actions import (
    RENAME,
    REPLACE,
    UPLOAD,
    Action,
    Desired,
    ObsoleteUpdate,
    Transfer,
    UpdateMetadata,
)
from fiwareglancesync.config import TargetConfig
from fiwareglancesync.image import AMI_PROPERTIES, Image, gc_paused, same_owner, write_rows
from fiwareglancesync.region import RegionRef

OBSOLETE_SUFFIX = "_obsolete"


class Status(StrEnum):
    """The sync status of an image in a region.

    A StrEnum, so a status is its string wherever it is written (CSV rows, JSON, the
    status page, metric labels) and compares equal to it.
    """

    OK = "ok"
    OK_STALLED = "ok_stalled_checksum"
    ERROR_CHECKSUM = "error_checksum"
    ERROR_AMI = "error_ami"
    PENDING_UPLOAD = "pending_upload"
    PENDING_REPLACE = "pending_replace"
    PENDING_RENAME = "pending_rename"
    PENDING_METADATA = "pending_metadata"
    PENDING_AMI = "pending_ami"


STATUSES = tuple(Status)  # the documented order, that of reports and metrics
TRANSFERS = frozenset({Status.PENDING_UPLOAD, Status.PENDING_REPLACE, Status.PENDING_RENAME})
# On Python 3.11 reading Status.X is a descriptor call (some 300 ns, fifteen times a
# global's): the paths run for every image of every region read these names instead.
_OK, _PENDING_UPLOAD, _PENDING_METADATA = Status.OK, Status.PENDING_UPLOAD, Status.PENDING_METADATA
_PENDING_AMI = Status.PENDING_AMI

Notice = tuple[int, str]  # (logging level, message)


@dataclass(slots=True)
class ImageStatus:
    """The sync status of one master image in one region."""

    status: Status
    region: RegionRef
    master: Image
    regional: Image | None = None
    message: str | None = None

    @property
    def name(self) -> str:
        return self.master.name

    @property
    def size(self) -> int:
        return self.master.size

    def fields(self) -> tuple[str, str, str]:
        """The ``--show-status`` row: status, region, image name."""
        return self.status, self.region.fullname, self.name

    def row(self) -> str:
        """The row as CSV text: a name with a comma, a quote or a newline is quoted."""
        out = io.StringIO()
        write_rows(out, [self.fields()])
        return out.getvalue()[:-1]


@dataclass
class RegionPlan:
    """What a region needs: every image's status, and the actions, in the order they run.

    Order: obsolete updates; metadata updates; transfers (ascending size, a kernel or
    ramdisk before the images that need it); then the metadata of images that waited
    for a kernel or ramdisk of this run (``pending_ami``).
    """

    region: RegionRef
    statuses: list[ImageStatus]
    actions: list[Action]
    notices: list[Notice]

    @property
    def transfers(self) -> list[Transfer]:
        return [action for action in self.actions if isinstance(action, Transfer)]

    @property
    def obsolete_updates(self) -> list[ObsoleteUpdate]:
        return [action for action in self.actions if isinstance(action, ObsoleteUpdate)]

    @property
    def is_synchronised(self) -> bool:
        return not self.actions


# --------------------------------------------------------------------------- master


def filter_master_images(
    images: Iterable[Image], project_id: str | None, region: str = "master"
) -> tuple[list[Image], list[Notice]]:
    """Keep active, named master images of the master project with a unique name."""
    active = [image for image in images if image.status == "active" and image.name]
    candidates = [
        image for image in active if not image.owner or same_owner(image.owner, project_id)
    ]
    notices: list[Notice] = []
    if active and not candidates:
        notices.append((logging.WARNING, _nothing_owned(active, project_id, region)))
    counts = Counter(image.name for image in candidates)
    for name, count in counts.items():
        if count > 1:
            notices.append((logging.WARNING, f"Duplicated images with name {name} will be ignored"))
    return [image for image in candidates if counts[image.name] == 1], notices


def _nothing_owned(active: list[Image], project_id: str | None, region: str) -> str:
    """Why nothing will be synchronised: every master image has another owner.

    The usual cause is a backup of a real cloud replayed by the mock without the project
    ids it was made with, or a tenant_id that is not the master project's id.
    """
    owners = Counter(image.owner for image in active).most_common(1)[0][0]
    return (
        f"None of the {len(active)} active images of the master region {region} is owned "
        f"by project {project_id}, the project id the owners are compared with: nothing "
        f"is synchronised. Set tenant_id in [master] to the project that owns them (most "
        f"are owned by {owners})"
    )


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


def by_size(images: Iterable[Image]) -> list[Image]:
    """The order of --show-status and of uploads: ascending size, ties by name."""
    return sorted(images, key=lambda image: (image.size, image.name))


def select_images(master_images: Iterable[Image], target: TargetConfig) -> list[Image]:
    """The master images a target synchronises, by size."""
    return by_size(image for image in master_images if is_synchronisable(image, target))


# --------------------------------------------------------------------------- regional


def _normalise(value: Any) -> str | None:
    # Glance v2 stores property values as strings: 1 and '1' are the same value.
    return None if value is None else str(value)


class _RegionalImages:
    """The regional images GlanceSync considers, chosen once per plan.

    Nameless images, other projects' (with ``only_tenant_images``) and images that are
    not active are left out; of two images with one name, the one with the master's
    checksum is kept. The warnings about them are collected in ``notices``.
    """

    def __init__(
        self,
        region: RegionRef,
        images: Sequence[Image],
        target: TargetConfig,
        project_id: str | None,
        master_by_name: dict[str, Image],
    ):
        self.region = region
        self.notices: list[Notice] = []
        self.names_by_id = {image.id: image.name for image in images}
        candidates: dict[str, list[Image]] = {}
        only_ours = target.only_tenant_images
        for image in images:
            name, owner = image.name, image.owner
            if not name:
                continue
            if owner and owner != project_id and not same_owner(owner, project_id):
                # Logged whatever the option; only_tenant_images decides what happens next.
                self._warn_if(
                    name in master_by_name,
                    f"{region}: image {name} (UUID {image.id}) is owned by other tenant: {owner}",
                )
                if only_ours:
                    continue
            if image.status != "active":
                self._warn_if(
                    name in master_by_name,
                    f"{region}: state of image {name} with UUID {image.id}  is not active: {image.status}",
                )
            elif name in candidates:
                candidates[name].append(image)
            else:
                candidates[name] = [image]
        self.chosen = {
            name: found[0]
            if len(found) == 1
            else self._choose(name, found, master_by_name.get(name))
            for name, found in candidates.items()
        }

    def _warn_if(self, relevant: bool, message: str) -> None:
        # Only names this target synchronises are worth a warning: the rest is not ours.
        if relevant:
            self.notices.append((logging.WARNING, message))

    def _choose(self, name: str, found: list[Image], master: Image | None) -> Image:
        chosen = found[0]
        if master is not None:
            chosen = next((i for i in found if i.checksum == master.checksum), found[0])
        if master is not None:
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


# --------------------------------------------------------------------------- AMI

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


class _DependenciesFirst(Generic[_Key, _Value]):
    """Values computed depth first, each once: the planner's one cycle guard.

    A kernel's or ramdisk's value is computed while its dependant's is, before that one
    is finished. Where dependencies form a cycle (an image naming itself as its kernel,
    two images naming each other), the image met again while its own value is being
    computed gets ``on_cycle()``, which is not kept: the walk stops there.
    """

    def __init__(self) -> None:
        self.done: dict[_Key, _Value] = {}
        self._active: set[_Key] = set()

    def get(
        self, key: _Key, compute: Callable[[], _Value], on_cycle: Callable[[], _Value]
    ) -> _Value:
        found = self.done.get(key)
        if found is not None:
            return found
        if key in self._active:
            return on_cycle()
        self._active.add(key)
        try:
            value = self.done[key] = compute()
        finally:
            self._active.discard(key)
        return value


def names_ami(properties: Mapping[str, Any]) -> bool:
    """Do these properties name a kernel or ramdisk (a key, whatever its value)?

    The planner's one test for AMI images; the common answer is no, found in two lookups.
    """
    return "kernel_id" in properties or "ramdisk_id" in properties


def ami_dependencies(image: Image) -> list[tuple[str, str]]:
    """``(property, master id)`` for each kernel/ramdisk the image needs."""
    properties = image.user_properties
    if not names_ami(properties):
        return []
    return [(prop, str(properties[prop])) for prop in AMI_PROPERTIES if properties.get(prop)]


class _AmiDependencies:
    """Kernels and ramdisks: what an image needs, how they are named, and their order.

    In the master an AMI image names its kernel and ramdisk by master id, in a region by
    that region's ids; both are compared through master names.
    """

    def __init__(
        self,
        master_by_id: dict[str, Image],
        selected_ids: set[str],
        regional_names_by_id: dict[str, str],
    ):
        self.master_by_id = master_by_id
        self.selected_ids = selected_ids
        self.regional_names_by_id = regional_names_by_id

    def master_name(self, image_id: Any) -> str:
        image = self.master_by_id.get(str(image_id))
        return image.name if image is not None else str(image_id)

    def references(self, master: Image) -> dict[str, str | None]:
        """The master's kernel and ramdisk, as the names of master images."""
        found: dict[str, str | None] = {}
        for prop in AMI_PROPERTIES:
            wanted = master.user_properties.get(prop)
            found[prop] = self.master_name(wanted) if wanted else None
        return found

    def missing(self, dependencies: list[tuple[str, str]]) -> str | None:
        """Why a dependency cannot be had at all: it is not in the master (None: it is)."""
        for prop, dependency_id in dependencies:
            if dependency_id not in self.master_by_id:
                return f"its {prop} {dependency_id} is not an active image of the master region"
        return None

    def waiting(
        self, dependencies: list[tuple[str, str]], status_of: Callable[[Image], Status]
    ) -> tuple[Status, str | None] | None:
        """``error_ami`` or ``pending_ami`` when a dependency decides the image's status;
        None when every dependency is in the region (``status_of``: a dependency's)."""
        for prop, dependency_id in dependencies:
            dependency = self.master_by_id[dependency_id]
            if dependency_id not in self.selected_ids:
                return (
                    Status.ERROR_AMI,
                    f"its {prop} {dependency.name} is not synchronised to this region",
                )
            dependency_status = status_of(dependency)
            if dependency_status in TRANSFERS:
                return _PENDING_AMI, None
            if dependency_status == Status.ERROR_AMI:
                return Status.ERROR_AMI, f"its {prop} {dependency.name} is error_ami itself"
        return None

    def differ(self, mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
        """Do a master image's kernel and ramdisk differ from its regional copy's?"""
        for prop in AMI_PROPERTIES:
            wanted, actual = mine.get(prop), theirs.get(prop)
            if bool(wanted) != bool(actual):
                return True
            if wanted and self.master_name(wanted) != self.regional_names_by_id.get(str(actual)):
                return True
        return False

    def transfer_order(self, transfers: list[ImageStatus]) -> list[ImageStatus]:
        """Ascending size, but every kernel/ramdisk before the images that need it."""
        by_id = {entry.master.id: entry for entry in transfers}
        ordered: list[ImageStatus] = []
        walk: _DependenciesFirst[str, bool] = _DependenciesFirst()

        def place(entry: ImageStatus) -> bool:
            for _, dependency_id in ami_dependencies(entry.master):
                if dependency_id in by_id:
                    walk.get(dependency_id, partial(place, by_id[dependency_id]), _stay)
            ordered.append(entry)
            return True

        for entry in sorted(transfers, key=lambda e: (e.size, e.name)):
            walk.get(entry.master.id, partial(place, entry), _stay)
        return ordered


def _stay() -> bool:
    # A transfer met again in a dependency cycle: it keeps its place in size order.
    return False


# --------------------------------------------------------------------------- statuses


def _checksum_directive(checksum: str | None, target: TargetConfig) -> Status:
    """The one documented order: dontupdate, rename, replace, rename any, replace any."""
    if checksum in target.dontupdate:
        return Status.OK_STALLED
    if checksum in target.rename:
        return Status.PENDING_RENAME
    if checksum in target.replace:
        return Status.PENDING_REPLACE
    if "any" in target.rename:
        return Status.PENDING_RENAME
    if "any" in target.replace:
        return Status.PENDING_REPLACE
    return Status.ERROR_CHECKSUM


class _Statuses:
    """The status of each selected master image in the region.

    Decided from, in turn: the kernel and ramdisk being in the master, the regional
    copy's presence and checksum (with the checksum directives and protection), the
    kernel's and ramdisk's own statuses, and the metadata. Each image's status is
    computed once, a dependency's while its dependant's is (see _DependenciesFirst).
    Warnings for the operator go to ``notices``.
    """

    def __init__(
        self,
        region: RegionRef,
        regional: _RegionalImages,
        target: TargetConfig,
        members: Mapping[str, tuple[str, ...]],
        ami: _AmiDependencies,
    ):
        self.region = region
        self.chosen = regional.chosen
        self.notices = regional.notices
        self.target = target
        self.members = members
        self.ami = ami
        self._walk: _DependenciesFirst[str, ImageStatus] = _DependenciesFirst()

    def of(self, master: Image) -> ImageStatus:
        known = self._walk.done.get(master.id)
        if known is not None:
            return known
        regional = self.chosen.get(master.name)
        if not names_ami(master.user_properties):  # no dependency, so no cycle to guard
            result = self._walk.done[master.id] = self._plain(master, regional)
            return result
        return self._walk.get(
            master.id,
            lambda: self._entry(master, regional, self._decide),
            # Met again in a cycle: its content alone decides, and nothing is said twice.
            lambda: self._entry(master, regional, self._quiet_content),
        )

    def _plain(self, master: Image, regional: Image | None) -> ImageStatus:
        """_decide for an image without kernel or ramdisk (most images), kept short: at
        scale it runs for every image of every region."""
        if regional is not None and regional.checksum == master.checksum:
            differs = self._metadata_differs(master, regional)
            status, message = (_PENDING_METADATA if differs else _OK), None
        else:
            status, message = self._content(master, regional, True)
        return ImageStatus(status, self.region, master, regional, message)

    def _entry(
        self,
        master: Image,
        regional: Image | None,
        decide: Callable[[Image, Image | None], tuple[Status, str | None]],
    ) -> ImageStatus:
        status, message = decide(master, regional)
        return ImageStatus(status, self.region, master, regional, message)

    def _quiet_content(self, master: Image, regional: Image | None) -> tuple[Status, str | None]:
        return self._content(master, regional, False)

    def _decide(self, master: Image, regional: Image | None) -> tuple[Status, str | None]:
        """The status and, for an error or a checksum directive, the reason."""
        dependencies = ami_dependencies(master)
        missing = self.ami.missing(dependencies) if dependencies else None
        if missing is not None:
            return Status.ERROR_AMI, missing
        status, message = self._content(master, regional, True)
        if status != _OK:
            return status, message
        waiting = self.ami.waiting(dependencies, lambda image: self.of(image).status)
        if waiting is not None:
            return waiting
        assert regional is not None  # OK content: the region has a copy
        if self._metadata_differs(master, regional):
            return _PENDING_METADATA, None
        return _OK, None

    def _content(
        self, master: Image, regional: Image | None, notify: bool
    ) -> tuple[Status, str | None]:
        """Present or not, same content or not: everything but AMI and metadata."""
        if regional is None:
            return _PENDING_UPLOAD, None
        if regional.checksum == master.checksum:
            return _OK, None
        status = _checksum_directive(regional.checksum, self.target)
        message = f"checksum {regional.checksum} in the region, {master.checksum} in the master"
        if status in (Status.PENDING_REPLACE, Status.PENDING_RENAME) and regional.protected:
            return self._protected(master, regional, status, notify)
        if status == Status.ERROR_CHECKSUM and notify:
            self.notices.append(
                (
                    logging.WARNING,
                    f"Image {master.name} has a different checksum ({regional.checksum}) in "
                    f"region {self.region} than in the master region. It was not set "
                    "what to do. Please, fill either dontupdate, replace or rename with the "
                    "checksum.",
                )
            )
        return status, message

    def _protected(
        self, master: Image, regional: Image, status: Status, notify: bool
    ) -> tuple[Status, str]:
        """A protected copy is never replaced nor renamed: left as it is, and said so."""
        policy = "replace" if status == Status.PENDING_REPLACE else "rename"
        message = (
            f"protected in the region: {policy} (checksum {regional.checksum}) is not "
            "applied; GlanceSync never unprotects an image"
        )
        if notify:
            self.notices.append(
                (
                    logging.WARNING,
                    f"Image {master.name} ({regional.id}) is protected in region "
                    f"{self.region}: left as it is, although {policy} applies to its "
                    f"checksum {regional.checksum}.",
                )
            )
        return Status.ERROR_CHECKSUM, message

    def _metadata_differs(self, master: Image, regional: Image) -> bool:
        if master.visibility != regional.visibility and master.is_public != regional.is_public:
            return True  # visibility first: a plain attribute, equal in the steady state
        members = self.members.get(master.id, ()) if self.members else ()
        if (members or not fields.same_fields(master, regional)) and fields.differences(
            master, regional, self.target.sync_fields, members
        ):
            return True
        mine, theirs = master.user_properties, regional.user_properties
        has_ami = names_ami(mine)
        if mine == theirs and not has_ami:
            return False  # the steady state, decided at C speed
        keys = self.target.metadata_set or mine.keys()
        for key in keys:
            if key not in AMI_PROPERTIES and _normalise(mine.get(key)) != _normalise(
                theirs.get(key)
            ):
                return True
        if not has_ami:
            return names_ami(theirs)  # a kernel or ramdisk the master image no longer has
        return self.ami.differ(mine, theirs)


# --------------------------------------------------------------------------- actions


class _Actions:
    """The action that takes an image from its status to ``ok``: a metadata update or
    a transfer, carrying the image the region must end up with."""

    def __init__(
        self, target: TargetConfig, members: Mapping[str, tuple[str, ...]], ami: _AmiDependencies
    ):
        self.target = target
        self.members = members
        self.ami = ami

    def metadata_update(self, entry: ImageStatus, after_transfers: bool = False) -> UpdateMetadata:
        """The master's metadata on the regional copy; its other properties are kept."""
        assert entry.regional is not None
        master = entry.master
        properties = dict(entry.regional.user_properties)
        for key in self.target.metadata_set or master.user_properties.keys():
            if key in AMI_PROPERTIES:
                continue
            if key in master.user_properties:
                properties[key] = master.user_properties[key]
            else:
                properties.pop(key, None)
        desired = self._desired(master, properties, entry.regional)
        return UpdateMetadata(entry.regional, desired, after_transfers)

    def transfer(self, entry: ImageStatus) -> Transfer:
        """A copy of the master image: its properties (those of metadata_set, if any)."""
        master = entry.master
        wanted = self.target.metadata_set
        properties = {
            key: value
            for key, value in master.user_properties.items()
            if (not wanted or key in wanted) and key not in AMI_PROPERTIES
        }
        mode = {Status.PENDING_REPLACE: REPLACE, Status.PENDING_RENAME: RENAME}.get(
            entry.status, UPLOAD
        )
        return Transfer(master, self._desired(master, properties, None), mode, entry.regional)

    def _desired(
        self, master: Image, properties: dict[str, Any], regional: Image | None
    ) -> Desired:
        references = self.ami.references(master)
        members = self.members.get(master.id, ())
        return Desired(
            name=master.name,
            is_public=master.is_public,
            properties=properties,
            kernel=references["kernel_id"],
            ramdisk=references["ramdisk_id"],
            fields=fields.desired(master, regional, self.target.sync_fields, members),
        )


# --------------------------------------------------------------------------- obsolete


class _ObsoleteImages:
    """The regional images to rename ``X_obsolete``, or to keep in step with one.

    A master ``X_obsolete`` is ignored, with a warning, while the master still has a
    synchronisable ``X``. Only active copies with the master's checksum are touched,
    other projects' only without ``only_tenant_images``, and protected ones never.
    """

    def __init__(
        self,
        region: RegionRef,
        target: TargetConfig,
        project_id: str | None,
        regional_images: list[Image],
        notices: list[Notice],
    ):
        self.region = region
        self.target = target
        self.project_id = project_id
        self.regional_images = regional_images
        self.notices = notices

    def updates(self, master_images: list[Image], selected: list[Image]) -> list[ObsoleteUpdate]:
        if not self.target.support_obsolete_images:
            return []
        selected_names = {image.name for image in selected}
        updates: list[ObsoleteUpdate] = []
        for master in master_images:
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
            updates.extend(self._updates_of(master, base))
        return updates

    def _may_change(self, regional: Image) -> bool:
        """Own images always; other projects' only when only_tenant_images is false."""
        if not self.target.only_tenant_images:
            return True
        return not regional.owner or same_owner(regional.owner, self.project_id)

    def _updates_of(self, master: Image, base: str) -> Iterable[ObsoleteUpdate]:
        for regional in self.regional_images:
            if (
                regional.name in (base, master.name)
                and regional.status == "active"
                and regional.checksum == master.checksum
                and self._may_change(regional)
            ):
                desired = obsolete_image(regional, master, self.target.obsolete_syncprops)
                if desired == regional:
                    continue
                if regional.protected:
                    # Marking it obsolete is a policy like replace and rename: a protected
                    # copy is left exactly as it is, and the operator told.
                    self.notices.append(
                        (
                            logging.WARNING,
                            f"Image {regional.name} ({regional.id}) is protected in region "
                            f"{self.region}: not marked obsolete (as {master.name}), "
                            "although the master image is obsolete.",
                        )
                    )
                    continue
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


# --------------------------------------------------------------------------- the plan


def _plan(
    region: RegionRef,
    master_images: list[Image],
    selected: list[Image],
    regional_images: list[Image],
    target: TargetConfig,
    project_id: str | None,
    members: Mapping[str, tuple[str, ...]],
) -> RegionPlan:
    """Statuses first (their warnings first too), then the actions in the order they run."""
    master_by_name = {image.name: image for image in selected}
    regional = _RegionalImages(region, regional_images, target, project_id, master_by_name)
    master_by_id = {image.id: image for image in master_images}
    ami = _AmiDependencies(master_by_id, {image.id for image in selected}, regional.names_by_id)
    by_status = _Statuses(region, regional, target, members, ami)
    statuses = [by_status.of(image) for image in selected]
    obsolete = _ObsoleteImages(region, target, project_id, regional_images, regional.notices)
    make = _Actions(target, members, ami)
    transfers = ami.transfer_order([s for s in statuses if s.status in TRANSFERS])
    actions: list[Action] = [
        *obsolete.updates(master_images, selected),
        *(make.metadata_update(s) for s in statuses if s.status == _PENDING_METADATA),
        *(make.transfer(entry) for entry in transfers),
        *(make.metadata_update(s, True) for s in statuses if s.status == _PENDING_AMI),
    ]
    return RegionPlan(region, statuses, actions, regional.notices)


def plan_region(
    region: RegionRef,
    master_images: list[Image],
    regional_images: list[Image],
    target: TargetConfig,
    project_id: str | None,
    selected: list[Image] | None = None,
    members: Mapping[str, tuple[str, ...]] | None = None,
) -> RegionPlan:
    """The statuses and actions of one region.

    ``master_images`` are the kept master images (:func:`filter_master_images`);
    ``selected`` (from :func:`select_images`, so sorted by size) may be passed when
    already computed for the target. ``members``: by master image id, the projects of
    the target (ids) its copy must be shared with (the target's ``members`` option).
    """
    if selected is None:
        selected = select_images(master_images, target)
    with gc_paused():
        return _plan(
            region, master_images, selected, regional_images, target, project_id, members or {}
        )


def only_images(
    plan: RegionPlan, image_ids: Iterable[str], master_images: Iterable[Image]
) -> RegionPlan:
    """The part of ``plan`` that concerns the master images ``image_ids``: their actions,
    and those of the kernels and ramdisks they need (which must land first, or the image
    goes without them). The statuses stay the whole region's: they say what it holds.

    An agent that saw one image change syncs just it; an id the master no longer has
    concerns nothing (GlanceSync never deletes a regional copy).
    """
    by_id = {image.id: image for image in master_images}
    wanted = set(image_ids)
    todo = list(wanted)
    while todo:
        image = by_id.get(todo.pop())
        if image is None:
            continue
        for _, dependency in ami_dependencies(image):
            if dependency not in wanted:
                wanted.add(dependency)
                todo.append(dependency)
    names = {by_id[image_id].name for image_id in wanted if image_id in by_id}

    def concerns(action: Action) -> bool:
        if isinstance(action, Transfer):
            return action.master.id in wanted
        # A metadata update carries the master's name; an obsolete update the name of
        # the master's X_obsolete image.
        return action.desired.name in names

    actions = [action for action in plan.actions if concerns(action)]
    return RegionPlan(plan.region, plan.statuses, actions, plan.notices)
