"""What changed in the master between two of its listings: a pure function.

A listing is the master images a sync works from (``GlanceSync.master_images``:
active, named, the master project's, of a unique name), so an image that becomes
active, or whose duplicate name goes away, appears here as new, and one that stops
being active as deleted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fiwareglancesync.image import Image

# The fields compared, and the word a log line uses for each. ``region`` is not one:
# it names where the listing came from, not the image.
FIELD_WORDS = {
    "name": "name",
    "checksum": "checksum",
    "os_hash_value": "checksum",
    "size": "size",
    "visibility": "visibility",
    "user_properties": "properties",
    "members": "members",
    "tags": "tags",
    "protected": "protected",
    "hidden": "hidden",
    "min_disk": "min_disk",
    "min_ram": "min_ram",
    "disk_format": "formats",
    "container_format": "formats",
    "owner": "owner",
}


class Kind(enum.StrEnum):
    NEW = "new"
    CHANGED = "changed"
    DELETED = "deleted"


@dataclass(frozen=True)
class Change:
    """One master image that is new, changed (``fields`` says what) or gone."""

    image_id: str
    name: str
    kind: Kind
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind is Kind.CHANGED:
            return f"image {self.name} ({self.image_id}) changed: {', '.join(self.fields)}"
        return f"{self.kind} image {self.name} ({self.image_id})"


def changed_fields(old: Image, new: Image) -> tuple[str, ...]:
    """The words for what differs between two records of one image, in table order."""
    words: list[str] = []
    for name, word in FIELD_WORDS.items():
        if getattr(old, name) != getattr(new, name) and word not in words:
            words.append(word)
    return tuple(words)


def _by_id(images: Iterable[Image]) -> dict[str, Image]:
    return {image.id: image for image in images}


def detect_changes(old: Sequence[Image] | None, new: Sequence[Image]) -> list[Change]:
    """The changes from listing ``old`` to listing ``new``: new images, changed ones,
    then deleted ones, each in listing order. ``old`` None (nothing known yet): none."""
    if old is None:
        return []
    before, after = _by_id(old), _by_id(new)
    changes: list[Change] = []
    for image_id, image in after.items():
        previous = before.get(image_id)
        if previous is None:
            changes.append(Change(image_id, image.name, Kind.NEW))
            continue
        fields = changed_fields(previous, image)
        if fields:
            changes.append(Change(image_id, image.name, Kind.CHANGED, fields))
    changes += [
        Change(image_id, image.name, Kind.DELETED)
        for image_id, image in before.items()
        if image_id not in after
    ]
    return changes
