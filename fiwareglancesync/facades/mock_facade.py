"""The mock facade: regions replayed from backup CSVs instead of real servers.

:class:`MockFacade` serves one target over a :class:`MockStore`: a
:class:`JournalStore` in a directory (``GLANCESYNC_MOCKPERSISTENT_PATH``, what the
mock loader makes) or a :class:`MemoryStore` (tests, examples). :func:`open_store` is
the one place the kind of store is chosen.

A listing returns every row of the region, as Glance listing with an admin token returns
other projects' private images too: the planner's owner rules decide what counts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fiwareglancesync.backup import backup_file_name, region_of_file
from fiwareglancesync.config import MASTER, TargetConfig
from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import (
    UNFINISHED_STATUSES,
    ChecksumMismatch,
    Facade,
    ImageData,
    check_checksum,
    names_its_service,
)
from fiwareglancesync.facades.journal import journal_file_name
from fiwareglancesync.facades.journal_store import STORE_MARKER, JournalStore
from fiwareglancesync.facades.mock_store import MemoryStore, MockStore
from fiwareglancesync.facades.streams import SourceError, guarded_source, size_checked_chunks
from fiwareglancesync.image import Image, same_owner
from fiwareglancesync.preflight import (
    IMAGE_COUNT_TOTAL,
    IMAGE_SIZE_TOTAL,
    AcceptedFormats,
    MiB,
    format_refusal,
)
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

# What every mock region's image schema lists: Glance's defaults for its disk_formats and
# container_formats options.
GLANCE_DEFAULT_FORMATS = AcceptedFormats(
    disk_formats=frozenset(
        {"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
    ),
    container_formats=frozenset(
        {"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
    ),
)
# Statuses of an image that Glance's image_count_total does not count.
_NOT_COUNTED = frozenset({"killed", "deleted"})
UNLIMITED = -1

__all__ = [
    "STORE_MARKER",
    "JournalStore",
    "MemoryStore",
    "MockData",
    "MockFacade",
    "MockStore",
    "backup_file_name",
    "journal_file_name",
    "open_store",
    "region_of_file",
]


def open_store(path: str | os.PathLike[str] | None, read_only: bool = False) -> MockStore:
    """The store in directory ``path`` (a :class:`JournalStore`), or a new, empty
    :class:`MemoryStore` when there is no directory.

    ``read_only``: the run changes no image (a status, a dry run, a backup), so a store
    on disk must not write either, not even to compact its journals.
    """
    if path is None:
        return MemoryStore()
    return JournalStore(path, read_only=read_only)


@dataclass
class MockData(ImageData):
    """What the mock's ``download`` gives: no bytes, since the mock keeps metadata only.

    The mock master vouches for it, as the master Glance vouches for what it streams, so
    an upload accepts it as the master image's data without reading it.
    """


def check_data(image: Image, data: ImageData | None) -> None:
    """Refuse bytes that are not the master image's, as the Glance facade does.

    A file or a stream is read to the end: its length must be the one it was given with
    (the image's size for a stream) and its MD5 the master's checksum. ``None`` (the
    tests' shorthand for "no data") and the mock's own :class:`MockData` carry no bytes.
    """
    if data is None or isinstance(data, MockData):
        return
    digest = hashlib.md5(usedforsecurity=False)
    chunks = guarded_source(size_checked_chunks(data), data.source, (ChecksumMismatch,))
    try:
        for block in chunks:
            digest.update(block)
        check_checksum(data, digest.hexdigest())
    except ChecksumMismatch as error:
        raise FacadeError(f"refused to upload image {image.name}: {error}") from None
    except SourceError as error:
        raise FacadeError(f"uploading image {image.name}: {error}") from None


class _Listing(list[Image]):
    """A listing that can be referred to weakly: the facade may count a usage from it
    while its caller holds it, without keeping a whole region alive after that."""

    __slots__ = ("__weakref__",)


class _Usage:
    """The project's images in one region as Glance's quota counts them: how many (not
    killed or deleted) and the bytes of the active ones. Kept up to date by the facade's
    own changes, so a sync of many images does not count the region again for each."""

    def __init__(self, images: Iterable[Image], project_id: str):
        # One pass, inlined: it runs over a whole region before its first upload.
        self._sizes: dict[str, int] = {
            image.id: ((image.size or 0) if image.status == "active" else 0)
            for image in images
            if image.status not in _NOT_COUNTED
            and (image.owner == project_id or same_owner(image.owner, project_id))
        }
        self._bytes = sum(self._sizes.values())

    def add(self, image: Image) -> None:
        if image.status in _NOT_COUNTED:
            return
        self.remove(image.id)
        size = (image.size or 0) if image.status == "active" else 0
        self._sizes[image.id] = size
        self._bytes += size

    def remove(self, image_id: str) -> None:
        self._bytes -= self._sizes.pop(image_id, 0)

    def answer(self) -> dict[str, Any]:
        """As ``GET /v2/info/usage`` gives it; the mock enforces no limit."""
        return {
            IMAGE_COUNT_TOTAL: {"usage": len(self._sizes), "limit": UNLIMITED},
            IMAGE_SIZE_TOTAL: {"usage": self._bytes // MiB, "limit": UNLIMITED},
        }


class MockFacade(Facade):
    """The facade of one target over a :class:`MockStore`.

    The mock has no Keystone and keeps no image data; what it can tell, it answers as a
    Glance would: the formats of Glance's default schema, the project's quota usage (no
    limit), no import method, and a project's name is its id.
    """

    def __init__(self, store: MockStore, target: TargetConfig):
        self.store = store
        self.target = target
        # By region fullname, our unfinished images by name as the last listing found
        # them: the leftovers an upload of that name removes, as the Glance facade does.
        self._listed_unfinished: dict[str, dict[str, list[Image]]] = {}
        # The last listing, while its caller holds it (a usage is counted from it if
        # asked for), and the usage of the last region asked for.
        self._listing: tuple[str, weakref.ref[_Listing]] | None = None
        self._usage: tuple[str, _Usage] | None = None

    def lock_key(self, region: RegionRef) -> str | None:
        return self.store.lock_key(region.fullname)

    @names_its_service("the mock store")
    def regions(self) -> list[str]:
        prefix = f"{self.target.name}:"
        if self.target.name == MASTER:
            return [name for name in self.store.region_names() if ":" not in name]
        names = self.store.region_names()
        return [name[len(prefix) :] for name in names if name.startswith(prefix)]

    @names_its_service("the mock store")
    def project_id(self) -> str:
        """tenant_id, else the id the backup recorded, else ``<project name>id``."""
        recorded = self.store.project_ids().get(self.target.name)
        project = self.target.credential.project_name or self.target.name
        return self.target.tenant_id or recorded or f"{project}id"

    def _unknown(self, region: RegionRef) -> FacadeError:
        return FacadeError(f"unknown region {region.name} (no {backup_file_name(region.fullname)})")

    @names_its_service("the mock store")
    def list_images(self, region: RegionRef) -> list[Image]:
        # Every row, hidden images included (the Glance facade asks for them too): the
        # backup holds what the listing returned when it was made.
        read = self.store.read(region.fullname)
        if read is None:
            raise self._unknown(region)
        images = _Listing(read)
        self._listed_unfinished[region.fullname] = self._leftovers_by_name(images)
        self._listing = (region.fullname, weakref.ref(images))
        if self._usage is not None and self._usage[0] == region.fullname:
            self._usage = None  # counted again from this listing, if asked for
        return images

    def _leftovers_by_name(self, images: list[Image]) -> dict[str, list[Image]]:
        found: dict[str, list[Image]] = {}
        project_id = None
        for image in images:
            if image.status in UNFINISHED_STATUSES:
                project_id = project_id or self.project_id()
                if same_owner(image.owner, project_id):
                    found.setdefault(image.name, []).append(image)
        return found

    def _remove_unfinished(self, region: RegionRef, name: str) -> None:
        """Delete our images called ``name`` that an earlier upload left unfinished."""
        listed = self._listed_unfinished.get(region.fullname)
        if listed is None:  # not listed by this facade: look now
            listed = self._leftovers_by_name(self.store.read(region.fullname) or [])
        for leftover in listed.pop(name, []):
            logger.warning(
                "%s: removing image %s (%s), left %s by an earlier interrupted upload",
                region.name,
                name,
                leftover.id,
                leftover.status,
            )
            self.store.delete_image(region.fullname, leftover.id)
            self._changed(region.fullname, removed=leftover.id)

    @names_its_service("the mock store")
    def upload(self, region: RegionRef, image: Image, data: ImageData | None) -> Image:
        fullname = region.fullname
        if not self.store.has_region(fullname):
            raise self._unknown(region)  # named before the data is read
        refused = format_refusal(image, GLANCE_DEFAULT_FORMATS)
        if refused:  # as Glance refuses to create the record
            raise FacadeError(f"refused to upload image {image.name}: {refused}")
        check_data(image, data)
        self._remove_unfinished(region, image.name)
        # The image as the engine wants it: its fields say whether it is hidden, tagged...
        wanted = image.copy(owner=self.project_id(), region=fullname)
        created = self.store.add_image(fullname, wanted)
        if created is None:
            raise self._unknown(region)
        self._changed(fullname, added=created)
        return created

    @names_its_service("the mock store")
    def update(self, region: RegionRef, image: Image) -> None:
        found = self.store.update_image(region.fullname, image)
        if found is None:
            raise self._unknown(region)
        if not found:
            raise FacadeError(f"image {image.id} not found in region {region.name}")

    @names_its_service("the mock store")
    def delete(self, region: RegionRef, image_id: str) -> bool:
        deleted = self.store.delete_image(region.fullname, image_id)
        if deleted is None:
            raise self._unknown(region)
        if deleted:
            self._changed(region.fullname, removed=image_id)
        return deleted

    @names_its_service("the mock store")
    def download(self, region: RegionRef, image: Image) -> ImageData:
        # The mock keeps metadata only: there are no bytes to stream.
        return MockData.from_stream(iter(()), image, f"mock:{region.fullname}")

    @names_its_service("the mock store")
    def project_names(self, project_ids: Iterable[str]) -> dict[str, str]:
        """Without a Keystone, a project's name is its id (so ``members`` names ids)."""
        return {project_id: project_id for project_id in project_ids}

    @names_its_service("the mock store")
    def project_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        """Without a Keystone, a project's id is its name."""
        return {name: name for name in names}

    def _known(self, region: RegionRef) -> None:
        if not self.store.has_region(region.fullname):
            raise self._unknown(region)

    @names_its_service("the mock store")
    def import_methods(self, region: RegionRef) -> frozenset[str]:
        """None: a mock region has no bytes to pull, so every copy is an upload."""
        self._known(region)
        return frozenset()

    @names_its_service("the mock store")
    def accepted_formats(self, region: RegionRef) -> AcceptedFormats | None:
        self._known(region)
        return GLANCE_DEFAULT_FORMATS

    @names_its_service("the mock store")
    def image_limits(self, region: RegionRef) -> dict[str, Any] | None:
        """The project's usage in the region, counted once (from the last listing when
        it is the region's) and then kept by this facade's own uploads and deletes."""
        fullname = region.fullname
        if self._usage is None or self._usage[0] != fullname:
            images: list[Image] | None = None
            if self._listing is not None and self._listing[0] == fullname:
                images = self._listing[1]()  # None once its caller let it go
            if images is None:
                images = self.store.read(fullname)
            if images is None:
                raise self._unknown(region)
            self._usage = (fullname, _Usage(images, self.project_id()))
        return self._usage[1].answer()

    def _changed(self, fullname: str, added: Image | None = None, removed: str = "") -> None:
        """Keep the usage counted for ``fullname`` right; a listing held is now stale."""
        if self._usage is not None and self._usage[0] == fullname:
            if removed:
                self._usage[1].remove(removed)
            if added is not None:
                self._usage[1].add(added)
        elif self._listing is not None and self._listing[0] == fullname:
            self._listing = None

    def read_head(self, region: RegionRef, image: Image, size: int) -> bytes | None:
        """Cannot tell: the mock keeps no image data (its master's "download" is empty)."""
        return None

    def finish_region(self, region: RegionRef) -> None:
        """Fold the region's journal into its snapshot: the store is a scenario again."""
        try:
            self.store.compact(region.fullname)
        except FacadeError as error:  # the records are safe in the journal
            logger.debug("%s: the mock store journal is not compacted: %s", region.fullname, error)

    def close(self) -> None:
        self.store.compact_all()
