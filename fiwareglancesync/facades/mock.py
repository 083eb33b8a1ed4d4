"""The mock facade: regions replayed from backup CSVs instead of real servers.

The store keeps one ``backup_<fullname>.csv`` per region, in the backup format, and the
``project_ids.json`` of the backup it was loaded from, so a store directory is itself a
scenario that can be copied, inspected or replayed. Every change rewrites that region's
file atomically (temporary file, fsync, rename) under an exclusive lock, so
``--parallel`` children and killed processes never leave it torn.

A listing returns every row of the region, as Glance listing with an admin token returns
other projects' private images too: the planner's owner rules decide what counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fiwareglancesync.backup import (
    PROJECT_IDS_FILE,
    BackupFormatError,
    backup_file_name,
    project_ids_text,
    read_project_ids,
    region_of_file,
)
from fiwareglancesync.config import MASTER, TargetConfig
from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import ChecksumMismatch, Facade, ImageData, check_checksum
from fiwareglancesync.facades.transfer import SourceError, guarded_source, size_checked_chunks
from fiwareglancesync.image import CsvFormatError, Image, read_csv, write_csv

# The file that says "glancesync-mock made this directory": the loader replaces only a
# directory holding it (or an empty one), and removes only the files a store holds.
STORE_MARKER = ".glancesync-mock-store"
STORE_MARKER_TEXT = (
    "A GlanceSync mock store, made by glancesync-mock; replaced by it on --confirm.\n"
)

__all__ = [
    "STORE_MARKER",
    "MockData",
    "MockFacade",
    "MockStore",
    "backup_file_name",
    "region_of_file",
]


def _store_error(action: str, path: Path | None, error: OSError) -> FacadeError:
    reason = (error.strerror or str(error)).lower()
    return FacadeError(f"cannot {action} the mock store {path}: {reason}")


class MockStore:
    """Images per region fullname: in memory, or persisted in a directory."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        project_ids: dict[str, str] | None = None,
    ):
        self.path = Path(path).absolute() if path is not None else None
        self._memory: dict[str, list[Image]] = {}
        self._memory_project_ids = dict(project_ids or {})

    def project_ids(self) -> dict[str, str]:
        """The project id of each target, as recorded by the backup the store came from."""
        if self.path is None:
            return dict(self._memory_project_ids)
        try:
            return read_project_ids(self.path)
        except BackupFormatError as error:
            raise FacadeError(str(error)) from None

    def set_project_ids(self, ids: dict[str, str]) -> None:
        if self.path is None:
            self._memory_project_ids = dict(ids)
            return
        self._write_file(self.path / PROJECT_IDS_FILE, lambda s: s.write(project_ids_text(ids)))

    def region_names(self) -> list[str]:
        if self.path is None:
            return sorted(self._memory)
        if not self.path.is_dir():
            raise FacadeError(f"the mock store {self.path} does not exist")
        try:
            names = [region_of_file(entry.name) for entry in self.path.iterdir()]
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        return sorted(name for name in names if name)

    def _file(self, fullname: str) -> Path:
        assert self.path is not None
        return self.path / backup_file_name(fullname)

    def read(self, fullname: str) -> list[Image] | None:
        """The images of a region, or None when there is no such region."""
        if self.path is None:
            images = self._memory.get(fullname)
            return None if images is None else [image.copy() for image in images]
        path = self._file(fullname)
        try:
            with open(path, encoding="utf-8", newline="") as stream:
                images = list(read_csv(stream, str(path)))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        except (CsvFormatError, UnicodeDecodeError) as error:
            raise FacadeError(f"the mock store file {path} cannot be read: {error}") from None
        for image in images:
            image.region = fullname
        return images

    def write(self, fullname: str, images: list[Image]) -> None:
        if self.path is None:
            self._memory[fullname] = [image.copy() for image in images]
            return
        self._replace(fullname, lambda stream: write_csv(stream, images))

    def import_file(self, fullname: str, source: Path) -> None:
        """Take a (checked) backup file as the region's content, byte for byte."""
        if self.path is None:
            with open(source, encoding="utf-8", newline="") as stream:
                self.write(fullname, read_csv(stream, str(source)))
            return
        with open(source, encoding="utf-8", newline="") as original:
            self._replace(fullname, lambda stream: shutil.copyfileobj(original, stream))

    def _replace(self, fullname: str, fill: Callable[[TextIO], None]) -> None:
        self._write_file(self._file(fullname), fill)

    def _ensure_directory(self) -> None:
        """Create the store's directory (and mark it as a store) when it is missing."""
        assert self.path is not None
        if self.path.is_dir():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / STORE_MARKER).write_text(STORE_MARKER_TEXT, encoding="utf-8")

    def _write_file(self, destination: Path, fill: Callable[[TextIO], None]) -> None:
        """Write a temporary file, fsync it, rename it over ``destination``."""
        assert self.path is not None
        try:
            self._ensure_directory()
            descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".csv")
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
                fill(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, destination)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(error, OSError):
                raise _store_error("write", self.path, error) from None
            raise

    @contextlib.contextmanager
    def locked(self, fullname: str) -> Iterator[None]:
        """Hold the region's lock across a read-modify-write, across processes."""
        if self.path is None:
            yield
            return
        try:
            self._ensure_directory()
            lock = open(self.path / f".{backup_file_name(fullname)}.lock", "a")  # noqa: SIM115
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


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


def _next_id(images: list[Image], name: str) -> str:
    """``<n>$<name>`` with the smallest n >= 1 that is not already an id of the region.

    The counter is per name: uploading ``image02`` where ``1$image01`` exists gives
    ``1$image02``, as the original mock did.
    """
    used = {image.id for image in images}
    number = 1
    while f"{number}${name}" in used:
        number += 1
    return f"{number}${name}"


class MockFacade(Facade):
    """The facade of one target over a :class:`MockStore`."""

    def __init__(self, store: MockStore, target: TargetConfig):
        self.store = store
        self.target = target

    def _fullname(self, region: str) -> str:
        return region if self.target.name == MASTER else f"{self.target.name}:{region}"

    def lock_key(self, region: str) -> str | None:
        if self.store.path is None:
            return None  # an in-memory store belongs to one process
        return f"mock {self.store.path} {self._fullname(region)}"

    def regions(self) -> list[str]:
        prefix = f"{self.target.name}:"
        if self.target.name == MASTER:
            return [name for name in self.store.region_names() if ":" not in name]
        names = self.store.region_names()
        return [name[len(prefix) :] for name in names if name.startswith(prefix)]

    def project_id(self) -> str:
        """tenant_id, else the id the backup recorded, else ``<project name>id``."""
        recorded = self.store.project_ids().get(self.target.name)
        return self.target.tenant_id or recorded or f"{self.target.credential.project_name}id"

    def _images(self, region: str) -> list[Image]:
        images = self.store.read(self._fullname(region))
        if images is None:
            raise FacadeError(
                f"unknown region {region} (no {backup_file_name(self._fullname(region))})"
            )
        return images

    def list_images(self, region: str) -> list[Image]:
        # Every row, hidden images included (the Glance facade asks for them too): the
        # backup holds what the listing returned when it was made.
        return self._images(region)

    def upload(self, region: str, image: Image, data: ImageData | None) -> Image:
        fullname = self._fullname(region)
        self._images(region)  # an unknown region is named before the data is read
        check_data(image, data)
        with self.store.locked(fullname):
            images = self._images(region)
            # Like Glance, an upload is never hidden, whatever the master image is.
            created = image.copy(
                id=_next_id(images, image.name),
                owner=self.project_id(),
                region=fullname,
                hidden=False,
            )
            images.append(created)
            self.store.write(fullname, images)
        return created.copy()

    def update(self, region: str, image: Image) -> None:
        fullname = self._fullname(region)
        with self.store.locked(fullname):
            images = self._images(region)
            for stored in images:
                if stored.id == image.id:
                    stored.name = image.name
                    stored.is_public = image.is_public
                    stored.user_properties = dict(image.user_properties)
                    break
            else:
                raise FacadeError(f"image {image.id} not found in region {region}")
            self.store.write(fullname, images)

    def delete(self, region: str, image_id: str) -> bool:
        fullname = self._fullname(region)
        with self.store.locked(fullname):
            images = self._images(region)
            kept = [image for image in images if image.id != image_id]
            if len(kept) == len(images):
                return False
            self.store.write(fullname, kept)
        return True

    def download(self, region: str, image: Image) -> ImageData:
        # The mock keeps metadata only: there are no bytes to stream.
        return MockData.from_stream(iter(()), image, f"mock:{self._fullname(region)}")
