"""How a master image gets into a region: the transfer method, chosen per upload.

``glance-download``
    The region's Glance pulls the image from the master region itself (an image import,
    Glance 2023.1 and later): no image byte goes through this host but the first MiB,
    which the pre-flight data check reads from the master once per image and run, as for
    every method (the region's Glance checks only the size of what it pulls). Possible where the region is in the master's
    Keystone (the import uses the caller's token to find and read the master region)
    and its Glance lists the method in ``GET /v2/info/import``.
``file``
    The copy of the image in ``images_dir`` (a file named by its master UUID) is sent.
``stream``
    The master Glance's download is piped into the region's upload, chunk by chunk.

A target's ``transfer`` option says which may be used: ``auto`` (the default) takes
glance-download where the region can use it, else a file, else a stream; ``stream``
never imports; ``glance-download`` insists, and a region that cannot use it fails.

Whatever the method, an image first passes the pre-flight checks (the target's
``preflight`` option, see :mod:`fiwareglancesync.preflight`): what the region can tell
in advance about an image that cannot land there refuses it before anything is created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fiwareglancesync import preflight
from fiwareglancesync.config import TargetConfig
from fiwareglancesync.errors import PreflightRefused, RegionError
from fiwareglancesync.facades.base import Facade, ImageData, ImportSource
from fiwareglancesync.facades.glance_import import GLANCE_DOWNLOAD
from fiwareglancesync.image import Image
from fiwareglancesync.preflight import NOTHING_PLANNED, AcceptedFormats, Planned
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

AUTO = "auto"
STREAM = "stream"
FILE = "file"
METHODS = (GLANCE_DOWNLOAD, FILE, STREAM)

DataOpener = Callable[[Image], ImageData]
FileFinder = Callable[[Image], bool]
# The first bytes of a master image (True: of its images_dir file, False: from the
# master Glance); None when the source cannot tell.
HeadReader = Callable[[Image, bool], bytes | None]


def same_keystone(target: TargetConfig, master: TargetConfig) -> bool:
    """Do both targets authenticate against the same Keystone (so share its catalog)?"""
    return _keystone(target) == _keystone(master)


def _keystone(target: TargetConfig) -> str:
    return target.credential.auth_url.strip().rstrip("/").lower()


@dataclass
class RegionSender:
    """Sends the master images one region needs, by the method its target allows.

    ``open_data`` reads a master image from images_dir or the master Glance, ``has_file``
    says whether images_dir has it, ``read_head`` reads the first MiB of one for the
    pre-flight data check (without it, the data is not checked). ``head_formats`` keeps
    what that check found, by master image id: the senders of one run share it, so an
    image is read once whatever the number of regions. ``streamed_bytes`` counts what
    went through this host: the bytes read from a file or from the master, re-read ones
    and those the pre-flight check read included.
    """

    region: RegionRef
    facade: Facade
    target: TargetConfig
    master_target: TargetConfig
    master_region: RegionRef
    open_data: DataOpener
    has_file: FileFinder
    read_head: HeadReader | None = None
    head_formats: dict[str, list[str]] = field(default_factory=dict)
    streamed_bytes: int = 0
    _server_side: tuple[bool, str] | None = field(default=None, repr=False)
    # What the region's schema accepts, asked once per region and run.
    _formats: AcceptedFormats | None = field(default=None, repr=False)
    _formats_asked: bool = field(default=False, repr=False)

    def method(self, master: Image) -> str:
        """The method ``master`` goes by; RegionError if glance-download is forced in vain."""
        wanted = self.target.transfer
        if wanted != STREAM:
            possible, reason = self._can_glance_download()
            if possible:
                return GLANCE_DOWNLOAD
            if wanted == GLANCE_DOWNLOAD:
                raise RegionError(
                    f"{self.target.name}.transfer is glance-download, but {self.region} "
                    f"cannot use it: {reason}"
                )
        return FILE if self.has_file(master) else STREAM

    def _can_glance_download(self) -> tuple[bool, str]:
        """Whether the region's Glance can pull from the master region, and if not why."""
        if self._server_side is None:
            self._server_side = self._ask_glance_download()
        return self._server_side

    def _ask_glance_download(self) -> tuple[bool, str]:
        if not same_keystone(self.target, self.master_target):
            return False, "it is not in the master's Keystone"
        methods = self.facade.import_methods(self.region)
        if GLANCE_DOWNLOAD not in methods:
            offered = ", ".join(sorted(methods)) or "none"
            return False, f"its Glance does not offer glance-download (it offers: {offered})"
        return True, ""

    def check(self, master: Image, method: str, planned: Planned = NOTHING_PLANNED) -> None:
        """Raise :class:`PreflightRefused` if ``master`` cannot land in the region.

        The cheapest first: the formats (asked once per region), the quota (asked for
        every image: the run's own uploads change it; a dry run says in ``planned``
        what it would have sent), then the data (one read of at most 1 MiB, from where
        ``method`` takes it: images_dir for ``file``, the master Glance for ``stream``
        and ``glance-download``). A glance-download's data is checked too: the region's
        Glance would take a qcow2 labelled raw, and bad data must not spread.
        """
        if not self.target.preflight:
            return
        reason = (
            preflight.format_refusal(master, self._accepted_formats())
            or preflight.quota_refusal(master, self.facade.image_limits(self.region), planned)
            or self._data_refusal(master, method)
        )
        if reason:
            raise PreflightRefused(master.name, reason)

    def _check_data(self, master: Image) -> None:
        """The data check again before a failed import's fallback (already decided,
        unless the master could not be read then: the fallback may read a file)."""
        if self.target.preflight:
            # The fallback sends what open_data reads: the images_dir file when there is one.
            reason = self._data_refusal(master, FILE if self.has_file(master) else STREAM)
            if reason:
                raise PreflightRefused(master.name, reason)

    def _accepted_formats(self) -> AcceptedFormats | None:
        if not self._formats_asked:
            self._formats = self.facade.accepted_formats(self.region)
            self._formats_asked = True
        return self._formats

    def _data_refusal(self, master: Image, method: str) -> str | None:
        if self.read_head is None or not preflight.inspectable(master):
            return None
        found = self.head_formats.get(master.id)
        if found is None:
            found = self._inspect_head(master, method)
        return None if found is None else preflight.formats_refusal(master, found)

    def _inspect_head(self, master: Image, method: str) -> list[str] | None:
        """The formats in the first MiB of ``master``, read once; None if unreadable."""
        assert self.read_head is not None
        try:
            head = self.read_head(master, method == FILE)
        except RegionError as error:
            # Not the region's answer: the data could not be read here. The transfer
            # itself then says whether it can be (a glance-download may still work).
            logger.warning(
                "%s: the data of %s is not checked before the transfer: %s",
                self.region.fullname,
                master.name,
                error,
            )
            return None
        if head is None:
            return None
        self.streamed_bytes += len(head)
        found = preflight.detected_formats(head)
        self.head_formats[master.id] = found
        return found

    def send(self, master: Image, wanted: Image) -> Image:
        """Copy ``master`` into the region as ``wanted`` (name, visibility, properties).

        Raises :class:`PreflightRefused`, having created nothing, if it cannot land.
        """
        method = self.method(master)
        self.check(master, method)
        opened: list[ImageData] = []

        def open_data() -> ImageData:
            if method == GLANCE_DOWNLOAD:  # the import failed: now the bytes pass here
                self._check_data(master)
            opened.append(self.open_data(master))
            return opened[-1]

        try:
            if method == GLANCE_DOWNLOAD:
                source = ImportSource(self.master_region, master, self.target.import_timeout)
                return self.facade.import_image(self.region, wanted, source, open_data)
            return self.facade.upload(self.region, wanted, open_data())
        finally:
            for data in opened:
                self.streamed_bytes += data.bytes_read
                data.close()
