"""What the mock keeps its regions in: the interface, and the store held in memory.

:class:`MockStore` is what :class:`~fiwareglancesync.facades.mock_facade.MockFacade` and the
mock loader need of a store: the images of each region by fullname, the project ids of
the backup the store came from, and changes one image at a time. Two stores implement
it: :class:`MemoryStore` here (the tests' and the in-process examples', gone with the
process) and :class:`~fiwareglancesync.facades.journal_store.JournalStore` (a directory
of snapshots and journals, shared by processes). ``facades.mock_facade.open_store`` is the one
place that chooses between them.
"""

from __future__ import annotations

import abc
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fiwareglancesync.facades.journal import RegionImages, apply_update
from fiwareglancesync.image import Image, read_csv

_Method = TypeVar("_Method", bound=Callable[..., Any])


def one_thread_at_a_time(method: _Method) -> _Method:
    """The service's threads share a store: its memory of the regions is changed by one."""

    @functools.wraps(method)
    def serialised(self: MockStore, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return serialised  # type: ignore[return-value]


def clone(image: Image) -> Image:
    """``image.copy()``, five times faster: a listing copies every image of a region."""
    copied = object.__new__(Image)
    copied.__dict__.update(image.__dict__)
    copied.user_properties = dict(image.user_properties)
    return copied


class MockStore(abc.ABC):
    """Images per region fullname, and the project ids of the backup they came from.

    A region that does not exist makes the image methods answer None. Every method may
    raise :class:`~fiwareglancesync.errors.FacadeError` when the store cannot be used.
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()

    # ------------------------------------------------------------------ project ids

    @abc.abstractmethod
    def project_ids(self) -> dict[str, str]:
        """The project id of each target, as recorded by the backup the store came from."""

    @abc.abstractmethod
    def set_project_ids(self, ids: dict[str, str]) -> None:
        """Record the project id of each target."""

    # ------------------------------------------------------------------ reading

    @abc.abstractmethod
    def region_names(self) -> list[str]:
        """The fullnames of the regions the store holds, sorted."""

    @abc.abstractmethod
    def has_region(self, fullname: str) -> bool:
        """Whether the store holds the region."""

    @abc.abstractmethod
    def read(self, fullname: str) -> list[Image] | None:
        """The images of a region (copies: the caller may keep or change them), or None
        when there is no such region."""

    # ------------------------------------------------------------------ changing

    @abc.abstractmethod
    def add_image(self, fullname: str, image: Image) -> Image | None:
        """Store ``image`` under a new ``<n>$<name>`` id; None when there is no such region."""

    @abc.abstractmethod
    def update_image(self, fullname: str, image: Image) -> bool | None:
        """Give ``image.id`` the metadata of ``image`` (as Glance would: see
        :func:`~fiwareglancesync.facades.journal.apply_update`); False: no such image."""

    @abc.abstractmethod
    def delete_image(self, fullname: str, image_id: str) -> bool | None:
        """Delete every image with this id; False: there was none."""

    @abc.abstractmethod
    def write(self, fullname: str, images: list[Image]) -> None:
        """Make ``images`` the whole content of the region (creating it if need be)."""

    @abc.abstractmethod
    def import_file(self, fullname: str, source: Path) -> None:
        """Take a (checked) backup file as the region's content."""

    # ------------------------------------------------------------------ life cycle

    @abc.abstractmethod
    def lock_key(self, fullname: str) -> str | None:
        """What identifies the region across processes (None: nothing to lock)."""

    @abc.abstractmethod
    def compact(self, fullname: str) -> None:
        """Called once a sync of the region is over: put what changed in its final form."""

    @abc.abstractmethod
    def compact_all(self) -> None:
        """Called at the end of a run: :meth:`compact` every region; failures are logged."""


class MemoryStore(MockStore):
    """A store held in this process's memory: nothing to lock, persist or compact."""

    def __init__(self, project_ids: dict[str, str] | None = None):
        super().__init__()
        self._regions: dict[str, RegionImages] = {}
        self._project_ids = dict(project_ids or {})

    def project_ids(self) -> dict[str, str]:
        return dict(self._project_ids)

    def set_project_ids(self, ids: dict[str, str]) -> None:
        self._project_ids = dict(ids)

    def region_names(self) -> list[str]:
        return sorted(self._regions)

    def has_region(self, fullname: str) -> bool:
        return fullname in self._regions

    @one_thread_at_a_time
    def read(self, fullname: str) -> list[Image] | None:
        images = self._regions.get(fullname)
        return None if images is None else [clone(image) for image in images.images()]

    @one_thread_at_a_time
    def add_image(self, fullname: str, image: Image) -> Image | None:
        images = self._regions.get(fullname)
        if images is None:
            return None
        created = image.copy(id=images.next_id(image.name))
        images.add(created)
        return created.copy()

    @one_thread_at_a_time
    def update_image(self, fullname: str, image: Image) -> bool | None:
        images = self._regions.get(fullname)
        if images is None:
            return None
        stored = images.first(image.id)
        if stored is not None:
            apply_update(stored, image)
        return stored is not None

    @one_thread_at_a_time
    def delete_image(self, fullname: str, image_id: str) -> bool | None:
        images = self._regions.get(fullname)
        return None if images is None else images.remove(image_id)

    @one_thread_at_a_time
    def write(self, fullname: str, images: list[Image]) -> None:
        self._regions[fullname] = RegionImages(image.copy() for image in images)

    @one_thread_at_a_time
    def import_file(self, fullname: str, source: Path) -> None:
        with open(source, encoding="utf-8", newline="") as stream:
            self.write(fullname, read_csv(stream, str(source)))

    def lock_key(self, fullname: str) -> str | None:
        return None  # an in-memory store belongs to one process

    def compact(self, fullname: str) -> None:
        """Nothing to fold: every change is already in the region's images."""

    def compact_all(self) -> None:
        """Nothing to fold."""
