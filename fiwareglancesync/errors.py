"""Expected errors, exit statuses, and the one place where an error becomes a message.

Expected errors (a bad configuration, an unreachable region, a wrong password) are
subclasses of :class:`GlanceSyncError` and become one line for the operator; anything
else is a bug and is shown with a traceback only when asked for (``--debug``).
:func:`explain` decides, for any exception, the lines to print, the exit status and the
HTTP status: the command line, the mock loader, ``run.py`` and the service all ask it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class ExitStatus(enum.IntEnum):
    """What ``sync.py`` and the other commands return to the shell."""

    OK = 0  # every region ran (statuses that need a person are not failures)
    REGION_FAILED = 1  # one or more regions failed
    USAGE = 2  # bad command line or configuration
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class GlanceSyncError(Exception):
    """An error an operator can act on; its message is shown without a traceback."""

    exit_status = ExitStatus.REGION_FAILED
    http_status = 503  # for the service: a cloud (or the store) did not do its part


class ConfigError(GlanceSyncError):
    """One or more configuration problems, reported together."""

    exit_status = ExitStatus.USAGE
    http_status = 500  # the service runs with a configuration that cannot work

    def __init__(self, problems: Iterable[str], warnings: Iterable[str] = ()):
        self.problems = list(problems)
        # What a valid configuration would have been warned about (unknown options):
        # shown with the problems, so fixing those does not bring up new surprises.
        self.warnings = list(warnings)
        super().__init__("; ".join(self.problems))


class UsageError(GlanceSyncError):
    """A command line that cannot be acted on (unknown target, bad region name)."""

    exit_status = ExitStatus.USAGE
    http_status = 410  # the service's "Bad region"


class RegionError(GlanceSyncError):
    """A region could not be listed or changed; the other regions go on."""


class PreflightRefused(RegionError):
    """A pre-flight check showed that an image cannot land in a region.

    Only that image is skipped: the executor logs it and goes on with the region's other
    actions, and the region then ends with errors (see :mod:`fiwareglancesync.preflight`).
    """

    def __init__(self, image: str, reason: str):
        super().__init__(f"image {image} refused before the transfer: {reason}")
        self.image = image
        self.reason = reason


class ImagesRefused(RegionError):
    """The pre-flight checks refused some of a region's images; the others were synced.

    ``result`` (a :class:`~fiwareglancesync.figures.RegionFigures`) says what the region's
    run did do, so the figures of a region that failed this way are still its own.
    """

    def __init__(self, message: str, result: Any):
        super().__init__(message)
        self.result = result


class FacadeError(RegionError):
    """A call to a cloud (or the mock) failed; the only error a facade raises.

    ``service`` names what did not do its part ("Keystone", "Glance", "the mock store")
    and ``region`` where, for the service's answers, which must say which service is
    unavailable without quoting internal URLs or a library's text. ``status`` is the
    HTTP status the cloud answered (404, 503...), None when it answered none (a refused
    connection, a timeout, a check of GlanceSync's own): the facade decides on it
    (``status in (403, 404)``: the cloud cannot tell) without digging into the
    library's exception. Not to be confused with ``http_status``, what the REST service
    answers for any FacadeError.
    """

    def __init__(
        self,
        message: str,
        service: str = "a cloud service",
        region: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.service = service
        self.region = region
        self.status = status


@dataclass(frozen=True)
class Explanation:
    """What to tell about an error: its lines, and the statuses it stands for."""

    lines: tuple[str, ...]
    exit_status: ExitStatus
    http_status: int
    bug: bool = False  # not an expected error: worth a traceback (with --debug, in logs)
    public: str | None = None  # what an HTTP caller may be told (no URL, no library text)

    @property
    def text(self) -> str:
        return "; ".join(self.lines)


def os_reason(error: OSError) -> str:
    """What went wrong with a file, in the words of an error line: "no space left on device"."""
    return (error.strerror or str(error) or type(error).__name__).lower()


def _os_error_line(error: OSError) -> str:
    reason = error.strerror or str(error) or type(error).__name__
    return f"{reason}: {error.filename}" if error.filename else reason


def _facade_error(error: BaseException) -> FacadeError | None:
    """The facade's own error behind ``error`` (the engine may have added context)."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None or isinstance(current, FacadeError):
            return current
        current = current.__cause__
    return None


def public_text(error: BaseException) -> str:
    """Which service is unavailable, for a caller of the REST service."""
    facade = _facade_error(error)
    if facade is None:
        return "a service GlanceSync needs is unavailable"
    if facade.region and facade.service == "Glance":
        return f"the image service (Glance) of region {facade.region} is unavailable"
    return f"{facade.service} is unavailable"


def explain(error: BaseException) -> Explanation:
    """The one decision of how an error is told and what it means for the caller."""
    if isinstance(error, KeyboardInterrupt):
        return Explanation(("Interrupted.",), ExitStatus.INTERRUPTED, 503)
    if isinstance(error, ConfigError):
        lines = tuple(error.problems) or (str(error),)
        public = "the service's configuration cannot work"
        return Explanation(lines, error.exit_status, error.http_status, public=public)
    if isinstance(error, GlanceSyncError):
        lines = (str(error) or type(error).__name__,)
        public = public_text(error) if error.http_status == 503 else lines[0]
        return Explanation(lines, error.exit_status, error.http_status, public=public)
    if isinstance(error, OSError):
        # A local file (images_dir, the working directory): not a bug, and not ours to fix.
        line = _os_error_line(error)
        return Explanation((line,), ExitStatus.REGION_FAILED, 503, public=public_text(error))
    line = f"unexpected error: {type(error).__name__}: {error}"
    return Explanation((line,), ExitStatus.REGION_FAILED, 500, bug=True)
