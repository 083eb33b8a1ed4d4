"""The Glance fields a copy carries besides its name, data and properties.

Pure functions of the master image, the regional copy and the target's ``sync_fields``:
which fields differ (the copy is then ``pending_metadata``), and what a new or updated
copy must have. The rules an operator relies on:

* a field left out of ``sync_fields`` keeps each region's own value, and a new copy is
  made without the master's (tags none, not hidden, not protected, min_disk/min_ram 0);
* ``visibility`` synchronises all four of Glance's; left out, only public-or-not is
  (the rule of format-1 backups and Glance v1: a private master image does not make a
  shared or community copy private);
* ``protected`` is set on a copy whose master is protected, never cleared: GlanceSync
  does not unprotect an image;
* members are added (and accepted) to the copies of shared images, never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fiwareglancesync.image import PRIVATE, PUBLIC, SHARED, Image

TAGS = "tags"
VISIBILITY = "visibility"
HIDDEN = "os_hidden"
PROTECTED = "protected"
MIN_DISK = "min_disk"
MIN_RAM = "min_ram"


@dataclass(frozen=True)
class Fields:
    """The values of the synchronised fields a copy must have (None: leave as it is)."""

    visibility: str | None = None
    tags: tuple[str, ...] = ()
    hidden: bool = False
    protected: bool = False
    min_disk: int = 0
    min_ram: int = 0
    members: tuple[str, ...] = ()

    def applied_to(self, image: Image) -> Image:
        """``image`` with these fields (its other fields untouched)."""
        changes: dict[str, Any] = {
            "tags": self.tags,
            "hidden": self.hidden,
            "protected": self.protected,
            "min_disk": self.min_disk,
            "min_ram": self.min_ram,
            "members": self.members,
        }
        if self.visibility:
            changes.update(visibility=self.visibility, visibility_known=True)
        else:  # public-or-not only: the facade keeps a shared or community copy so
            changes.update(visibility=PUBLIC if image.is_public else PRIVATE)
            changes.update(visibility_known=False)
        return image.copy(**changes)


def _visibility_known(master: Image, regional: Image | None) -> bool:
    return master.visibility_known and (regional is None or regional.visibility_known)


def differences(
    master: Image,
    regional: Image,
    synced: frozenset[str],
    members: Iterable[str] = (),
) -> list[str]:
    """The names of the synchronised fields in which ``regional`` is not what it must be.

    ``members``: the project ids the copy must be shared with (shared images only).
    """
    if not members and same_fields(master, regional):
        return []  # the steady state, checked first: this runs for every copy
    found = []
    visibility_known = VISIBILITY in synced and _visibility_known(master, regional)
    if visibility_known and master.visibility != regional.visibility:
        found.append(VISIBILITY)
    if TAGS in synced and set(master.tags) != set(regional.tags):
        found.append(TAGS)
    if HIDDEN in synced and master.hidden != regional.hidden:
        found.append(HIDDEN)
    if PROTECTED in synced and master.protected and not regional.protected:
        found.append(PROTECTED)
    if MIN_DISK in synced and int(master.min_disk or 0) != int(regional.min_disk or 0):
        found.append(MIN_DISK)
    if MIN_RAM in synced and int(master.min_ram or 0) != int(regional.min_ram or 0):
        found.append(MIN_RAM)
    wanted = set(members) if _shared_copy(master, regional, synced) else set()
    if wanted - set(regional.members):
        found.append("members")
    return found


def same_fields(master: Image, regional: Image) -> bool:
    """Every synchronised field equal as stored: no field can differ, whatever is synced.

    Plain attributes only (it runs for every copy); two copies whose visibility is not
    known, one public and one not, are not "the same" here, and differences() decides.
    """
    return (
        master.visibility == regional.visibility
        and master.visibility_known == regional.visibility_known
        and master.tags == regional.tags
        and master.hidden == regional.hidden
        and master.protected == regional.protected
        and master.min_disk == regional.min_disk
        and master.min_ram == regional.min_ram
    )


def _shared_copy(master: Image, regional: Image | None, synced: frozenset[str]) -> bool:
    """Will the copy be a shared image (the only kind that has members)?"""
    if VISIBILITY in synced and master.visibility_known:
        return master.visibility == SHARED
    return regional is not None and regional.visibility == SHARED


def desired(
    master: Image,
    regional: Image | None,
    synced: frozenset[str],
    members: Iterable[str] = (),
) -> Fields:
    """What the copy of ``master`` must have: the master's value of each synchronised
    field, the region's own (or the default, for a new copy) of the others."""
    base = regional or Image(name=master.name, id="")
    # None: public-or-not only, and the facade keeps a shared or community copy so.
    visibility = master.known_visibility if VISIBILITY in synced else None
    protected = bool(base.protected) or (PROTECTED in synced and master.protected)
    member_ids: tuple[str, ...] = ()
    if _shared_copy(master, regional, synced):
        member_ids = tuple(sorted(set(base.members) | set(members)))
    return Fields(
        visibility=visibility,
        tags=tuple(sorted(master.tags if TAGS in synced else base.tags)),
        hidden=master.hidden if HIDDEN in synced else base.hidden,
        protected=protected,
        min_disk=int((master if MIN_DISK in synced else base).min_disk or 0),
        min_ram=int((master if MIN_RAM in synced else base).min_ram or 0),
        members=member_ids,
    )


@dataclass(frozen=True)
class MemberPlan:
    """The target's projects each shared master image's copy must be shared with."""

    by_image: dict[str, tuple[str, ...]]  # master image id -> project ids of the target
    warnings: tuple[str, ...]


def wanted_members(
    shared: Iterable[Image],
    target: str,
    names: tuple[str, ...] | None,
    master_names: Mapping[str, str],
    target_ids: Mapping[str, str],
    own_project: str,
) -> MemberPlan:
    """Map the ``members`` option of ``target`` to its project ids, per shared image.

    ``names``: the project names of the option, or None for ``members = same`` (each
    image's own member projects, by the names ``master_names`` gives their ids).
    ``target_ids``: the ids of the names the target's Keystone knows. A project that
    cannot be mapped is a warning, never a failure; the target's own project owns the
    copy and is never one of its members.
    """
    images = list(shared)
    warnings: list[str] = []
    if names is None:
        unnamed = sorted({m for image in images for m in image.members} - set(master_names))
        if unnamed:
            warnings.append(
                f"target {target}: member projects {', '.join(unnamed)} of the master's "
                "images have no name in the master's Keystone; they are not mapped"
            )
    wanted = sorted(
        set(names)
        if names is not None
        else {master_names[m] for i in images for m in i.members if m in master_names}
    )
    missing = [name for name in wanted if name not in target_ids]
    if missing:
        warnings.append(
            f"target {target}: member projects {', '.join(missing)} do not exist in its "
            "Keystone; the copies are not shared with them"
        )
    by_image = {}
    for image in images:
        image_names = (
            names
            if names is not None
            else [master_names[m] for m in image.members if m in master_names]
        )
        ids = {target_ids[n] for n in image_names if n in target_ids} - {own_project}
        by_image[image.id] = tuple(sorted(ids))
    return MemberPlan(by_image, tuple(warnings))
