"""The narrow interface between the sync engine and a cloud.

One facade object serves one target (one Keystone credential). Its methods take the
region as a :class:`RegionRef` of that target: Glance needs its catalog name, the mock
its fullname, and the images a listing returns carry the fullname. The shape follows Glance's
Images API v2: an upload creates the image record and then streams its data; an update
sets name, visibility and the complete set of user properties (the facade turns that
into JSON-patch operations, removals included).
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fiwareglancesync.errors import FacadeError
from fiwareglancesync.image import Image
from fiwareglancesync.preflight import AcceptedFormats
from fiwareglancesync.region import RegionRef

CHUNK_SIZE = 1024 * 1024
# States of an image whose upload never finished (the client or the server died): the
# next upload of that name removes such a leftover of the target's project.
UNFINISHED_STATUSES = frozenset({"queued", "saving", "importing", "uploading", "killed", "deleted"})
Method = TypeVar("Method", bound=Callable[..., object])


@dataclass
class ImageData:
    """The bytes of a master image, read lazily in chunks so memory stays bounded.

    ``source`` says where they come from, for log and error messages; ``bytes_read``
    counts what went through this host, the bytes a resumed download read twice included.
    """

    size: int
    checksum: str | None
    source: str
    bytes_read: int = field(default=0, init=False)
    _chunks: Iterator[bytes] | None = field(default=None, repr=False)
    _path: str | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: str, image: Image) -> ImageData:
        return cls(size=os.path.getsize(path), checksum=image.checksum, source=path, _path=path)

    @classmethod
    def from_stream(cls, chunks: Iterator[bytes], image: Image, source: str) -> ImageData:
        return cls(size=image.size, checksum=image.checksum, source=source, _chunks=chunks)

    def chunks(self) -> Iterator[bytes]:
        for block in self._raw_chunks():
            self.bytes_read += len(block)
            yield block

    def _raw_chunks(self) -> Iterator[bytes]:
        if self._path is not None:
            with open(self._path, "rb") as stream:
                while block := stream.read(CHUNK_SIZE):
                    yield block
        elif self._chunks is not None:
            yield from self._chunks

    def close(self) -> None:
        closer = getattr(self._chunks, "close", None)
        if closer is not None:
            closer()


@dataclass(frozen=True)
class ImportSource:
    """Where a region's Glance pulls an image from: the master region, by image id.

    ``image`` is the master's own record: its checksum and strong hash verify the copy.
    """

    region: RegionRef
    image: Image
    timeout: float  # seconds the import may take (the target's import_timeout)
    method: str = "glance-download"


class ChecksumMismatch(Exception):
    """The data read did not have the checksum of the master image."""


def check_checksum(data: ImageData, hexdigest: str) -> None:
    """Raise :class:`ChecksumMismatch` when the bytes read are not the master image's."""
    if data.checksum and hexdigest != data.checksum:
        raise ChecksumMismatch(
            f"the data from {data.source} has checksum {hexdigest}, "
            f"the master image has {data.checksum}"
        )


def tagged(error: FacadeError, service: str, args: tuple[object, ...]) -> FacadeError:
    """Say which service failed, and in which region, unless the error says it already."""
    if error.service == FacadeError("").service:
        error.service = service
    if error.region is None:
        error.region = next((arg.name for arg in args if isinstance(arg, RegionRef)), None)
    return error


def names_its_service(service: str) -> Callable[[Method], Method]:
    """Decorate a facade method: its FacadeErrors name ``service`` and the region."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def wrapper(self: object, *args: object, **kwargs: object) -> object:
            try:
                return method(self, *args, **kwargs)
            except FacadeError as error:
                raise tagged(error, service, args) from error.__cause__

        return wrapper  # type: ignore[return-value]

    return decorate


class Facade(abc.ABC):
    """What the engine needs from the regions of one target."""

    @abc.abstractmethod
    def regions(self) -> list[str]:
        """The catalog names of the target's regions with an image service, sorted."""

    @abc.abstractmethod
    def project_id(self) -> str:
        """The id of the target's project: the owner of the images it creates."""

    @abc.abstractmethod
    def list_images(self, region: RegionRef) -> list[Image]:
        """Every image the listing returns in ``region``, with ``region`` set to its fullname."""

    @abc.abstractmethod
    def upload(self, region: RegionRef, image: Image, data: ImageData | None) -> Image:
        """Create ``image`` in ``region``, send its data and return the new image.

        On failure nothing half-made may stay behind; raise :class:`FacadeError`.
        """

    @abc.abstractmethod
    def update(self, region: RegionRef, image: Image) -> None:
        """Set name, visibility and exactly these user properties on ``image.id``."""

    @abc.abstractmethod
    def delete(self, region: RegionRef, image_id: str) -> bool:
        """Delete an image; False when there is no such image."""

    @abc.abstractmethod
    def download(self, region: RegionRef, image: Image) -> ImageData:
        """The data of ``image`` (used to stream master images)."""

    @abc.abstractmethod
    def project_names(self, project_ids: Iterable[str]) -> dict[str, str]:
        """The names of these projects in the target's Keystone, by id; ids it does not
        know are left out."""

    @abc.abstractmethod
    def project_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        """The ids of the projects with these names in the target's Keystone (in the
        domain of the target's own project when several have a name); names it does not
        know are left out."""

    def import_methods(self, region: RegionRef) -> frozenset[str]:
        """The import methods the region's image service offers (none by default)."""
        return frozenset()

    def import_image(
        self,
        region: RegionRef,
        image: Image,
        source: ImportSource,
        fallback: Callable[[], ImageData],
    ) -> Image:
        """Create ``image`` in ``region`` and have the region pull its data from ``source``.

        If the import fails or takes too long, log one line and send ``fallback()``'s
        data instead. Only facades whose :meth:`import_methods` offer one implement it.
        """
        raise FacadeError(f"{type(self).__name__} cannot import images")

    # Pre-flight answers (see :mod:`fiwareglancesync.preflight`). None means "cannot
    # tell": the check it feeds passes. A facade answers only what its cloud says.

    def image_limits(self, region: RegionRef) -> dict[str, Any] | None:
        """The project's quota usage in ``region``, as Glance's ``GET /v2/info/usage``
        gives it (``{"image_size_total": {"usage": U, "limit": L}, ...}``); read afresh
        at every call, since it changes as images are uploaded."""
        return None

    def accepted_formats(self, region: RegionRef) -> AcceptedFormats | None:
        """The disk and container formats ``region``'s image service accepts."""
        return None

    def read_head(self, region: RegionRef, image: Image, size: int) -> bytes | None:
        """The first ``size`` bytes of ``image``'s data in ``region`` (fewer if it is
        smaller), read without downloading the rest."""
        return None

    def lock_key(self, region: RegionRef) -> str | None:
        """What identifies ``region`` across processes (None: nothing to lock)."""
        return None

    def finish_region(self, region: RegionRef) -> None:  # noqa: B027 - optional hook
        """Called once the sync of ``region`` is over; the default has nothing to do.

        The persistent mock folds the region's journal into its snapshot here.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (the mock compacts its journals); the default has none."""
