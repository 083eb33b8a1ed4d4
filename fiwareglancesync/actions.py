"""The actions a plan is made of: what must happen in a region, decided in full.

Each action carries the complete image the region must end up with: name, visibility,
the exact user properties, and its kernel and ramdisk as the *names* of master images,
resolved to this region's ids only when the action runs (a kernel uploaded earlier in
the same run has no id until then). The planner (:mod:`plan`) makes them; the executor
(:mod:`apply`) only runs them, in order, and ``--dry-run`` describes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fiwareglancesync.fields import Fields
from fiwareglancesync.image import Image

UPLOAD = "upload"
REPLACE = "replace"  # upload, verify, then delete the old copy
RENAME = "rename"  # upload, verify, then rename the old copy to <name>.old, private


@dataclass(frozen=True)
class Desired:
    """An image as the region must have it, but for ids."""

    name: str
    is_public: bool
    # The user properties. A kernel_id or ramdisk_id in it only holds its place (the
    # order of the properties is kept, backups compare byte for byte): its value is
    # replaced by the regional id of ``kernel``/``ramdisk``, or it is removed.
    properties: dict[str, Any] = field(default_factory=dict)
    kernel: str | None = None  # the master name of its kernel image
    ramdisk: str | None = None  # the master name of its ramdisk image
    fields: Fields = field(default_factory=Fields)  # tags, visibility, protected, ...

    def references(self) -> dict[str, str | None]:
        """The master name of the kernel and ramdisk it needs, by property."""
        return {"kernel_id": self.kernel, "ramdisk_id": self.ramdisk}


@dataclass(frozen=True)
class ObsoleteUpdate:
    """Rename a regional image to ``X_obsolete``, or keep an ``X_obsolete`` in step."""

    current: Image
    desired: Image

    def describe(self, method: str | None = None) -> str:
        if self.current.name != self.desired.name:
            return f"would rename {self.current.name} to {self.desired.name}"
        return f"would update obsolete image {self.desired.name}"


@dataclass(frozen=True)
class UpdateMetadata:
    """Give a regional image the master's metadata (visibility, properties, AMI ids).

    ``after_transfers``: the image waits for a kernel or ramdisk uploaded in this run
    (``pending_ami``), so it goes after the transfers.
    """

    regional: Image
    desired: Desired
    after_transfers: bool = False

    @property
    def name(self) -> str:
        return self.desired.name

    def describe(self, method: str | None = None) -> str:
        return f"would update the metadata of {self.name}"


@dataclass(frozen=True)
class Transfer:
    """Copy a master image into the region; ``mode`` says what becomes of an old copy."""

    master: Image
    desired: Desired
    mode: str = UPLOAD
    old: Image | None = None

    @property
    def name(self) -> str:
        return self.master.name

    def wanted(self, properties: dict[str, Any], region: str) -> Image:
        """The image to create in ``region``: the master's data, formats and hashes (what
        the copy is verified with), the desired name, visibility and ``properties``."""
        image = self.master.copy(
            id="",
            owner="",
            region=region,
            name=self.desired.name,
            is_public=self.desired.is_public,
            user_properties=properties,
        )
        return self.desired.fields.applied_to(image)

    def describe(self, method: str | None = None) -> str:
        how = f" by {method}" if method else ""
        size = f"{self.master.size_mb} MB"
        if self.mode == REPLACE:
            return f"would replace {self.name} ({size}){how}, then delete the old copy"
        if self.mode == RENAME:
            return (
                f"would upload {self.name} ({size}){how}, then rename the old copy to "
                f"{self.name}.old"
            )
        return f"would upload {self.name} ({size}){how}"


Action = ObsoleteUpdate | UpdateMetadata | Transfer
