"""The mock facade: regions replayed from backup CSVs instead of real servers.

The store keeps one ``backup_<fullname>.csv`` per region, in the backup format, so a
store directory is itself a scenario that can be copied, inspected or replayed. Every
change rewrites that region's file atomically (temporary file, fsync, rename) under an
exclusive lock, so ``--parallel`` children and killed processes never leave it torn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from fiwareglancesync.config import MASTER, TargetConfig
from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.image import Image, read_csv, same_owner, write_csv

BACKUP_PREFIX = "backup_"
BACKUP_SUFFIX = ".csv"
_SEQUENCE_ID = re.compile(r"(\d+)\$")


def backup_file_name(fullname: str) -> str:
    return f"{BACKUP_PREFIX}{fullname}{BACKUP_SUFFIX}"


def region_of_file(file_name: str) -> str | None:
    """The region fullname a backup file stands for (``master:X`` counts as ``X``)."""
    if not (file_name.startswith(BACKUP_PREFIX) and file_name.endswith(BACKUP_SUFFIX)):
        return None
    name = file_name[len(BACKUP_PREFIX) : -len(BACKUP_SUFFIX)]
    if name.startswith(MASTER + ":"):
        name = name[len(MASTER) + 1 :]
    return name or None


class MockStore:
    """Images per region fullname: in memory, or persisted in a directory."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path).absolute() if path is not None else None
        self._memory: dict[str, list[Image]] = {}

    def region_names(self) -> list[str]:
        if self.path is None:
            return sorted(self._memory)
        if not self.path.is_dir():
            raise FacadeError(f"the mock store {self.path} does not exist")
        names = (region_of_file(entry.name) for entry in self.path.iterdir())
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
        """Write a temporary file, fsync it, rename it over the region's file."""
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".csv")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
                fill(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self._file(fullname))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def locked(self, fullname: str) -> Iterator[None]:
        """Hold the region's lock across a read-modify-write, across processes."""
        if self.path is None:
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / f".{backup_file_name(fullname)}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _next_id(images: list[Image], name: str) -> str:
    used = {int(match.group(1)) for image in images if (match := _SEQUENCE_ID.match(image.id))}
    number = 1
    while number in used:
        number += 1
    return f"{number}${name}"


class MockFacade(Facade):
    """The facade of one target over a :class:`MockStore`."""

    def __init__(self, store: MockStore, target: TargetConfig):
        self.store = store
        self.target = target

    def _fullname(self, region: str) -> str:
        return region if self.target.name == MASTER else f"{self.target.name}:{region}"

    def regions(self) -> list[str]:
        prefix = f"{self.target.name}:"
        if self.target.name == MASTER:
            return [name for name in self.store.region_names() if ":" not in name]
        names = self.store.region_names()
        return [name[len(prefix) :] for name in names if name.startswith(prefix)]

    def project_id(self) -> str:
        return self.target.tenant_id or f"{self.target.credential.project_name}id"

    def _images(self, region: str) -> list[Image]:
        images = self.store.read(self._fullname(region))
        if images is None:
            raise FacadeError(
                f"unknown region {region} (no {backup_file_name(self._fullname(region))})"
            )
        return images

    def list_images(self, region: str) -> list[Image]:
        # Like Glance seen through GlanceFacade: own images and public ones only (an
        # admin token would also show other projects' private images; they are left out).
        project_id = self.project_id()
        return [
            image
            for image in self._images(region)
            if image.is_public or not image.owner or same_owner(image.owner, project_id)
        ]

    def upload(self, region: str, image: Image, data: ImageData | None) -> Image:
        fullname = self._fullname(region)
        with self.store.locked(fullname):
            images = self._images(region)
            created = image.copy(
                id=_next_id(images, image.name),
                owner=self.project_id(),
                region=fullname,
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
        return ImageData.from_stream(iter(()), image, f"mock:{self._fullname(region)}")
