"""Plumbing for streamed transfers: chunk streams as files, source errors, progress bars.

Image data never touches the disk or sits whole in memory: it flows chunk by chunk from a
file in images_dir or from the master Glance's response into the upload request.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from fiwareglancesync.facades.base import CHUNK_SIZE, ChecksumMismatch, ImageData, check_checksum

logger = logging.getLogger(__name__)

# Chunks hashed ahead of the one being sent; bounds the memory the pipeline holds.
HASH_AHEAD = 2
# A master download that breaks is reopened from the byte reached this many times per
# image at most, waiting RESUME_PAUSE seconds before the first reopening, twice as long
# before each next one (at most RESUME_PAUSE_MAX).
RESUME_ATTEMPTS = 5
RESUME_PAUSE = 1.0
RESUME_PAUSE_MAX = 8.0


class SourceError(Exception):
    """Reading the image data failed (not sending it).

    The source's own exceptions (a dropped download from the master is a
    ``requests`` error) are re-raised as this, so that the HTTP stack of the *upload*
    does not mistake them for a failure of the upload connection.
    """


class ResumeImpossible(SourceError):
    """The source cannot serve the rest of the data from a given byte (no Range support)."""


class StreamedBody(Protocol):
    """What :func:`resumable_chunks` needs of an HTTP response (``requests.Response``)."""

    def iter_content(self, chunk_size: int) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def resumable_chunks(
    first: StreamedBody,
    reopen: Callable[[int], StreamedBody],
    size: int,
    source: str,
    broken: tuple[type[BaseException], ...],
    *,
    attempts: int | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> Iterator[bytes]:
    """Yield the body of ``first``; when it breaks, ``reopen`` it from the byte reached.

    ``broken``: the exceptions that mean the connection broke (or could not be reopened),
    as opposed to bugs. ``reopen(offset)`` returns the rest of the data from ``offset``
    (an HTTP ``Range`` request) or raises :class:`ResumeImpossible`. At most ``attempts``
    reopenings per image, with a growing pause; a body that ends short of ``size``
    counts as broken too. The consumer still checks the whole: the length on the way
    and the checksum once the upload is done.
    """
    attempts = RESUME_ATTEMPTS if attempts is None else attempts
    received, resumed = 0, 0
    response: StreamedBody | None = first
    while True:
        try:
            if response is None:
                response = reopen(received)
            for block in response.iter_content(CHUNK_SIZE):
                received += len(block)
                yield block
            if not size or received >= size:
                return
            cut: BaseException = SourceError(f"the connection closed after {received} bytes")
        except ResumeImpossible:
            raise
        except broken as error:
            cut = error
        finally:
            if response is not None:
                response.close()
            response = None
        if resumed >= attempts:
            raise SourceError(
                f"reading {source} broke at byte {received} of {size}, "
                f"{resumed} resumed downloads later: {cut}"
            ) from cut
        resumed += 1
        logger.warning(
            "reading %s broke at byte %d of %d (%s); resuming from there (%d of %d)",
            source,
            received,
            size,
            short_reason(cut),
            resumed,
            attempts,
        )
        sleep(min(RESUME_PAUSE * 2 ** (resumed - 1), RESUME_PAUSE_MAX))


def short_reason(error: BaseException) -> str:
    """The innermost message of a wrapped transport error, on one line.

    requests wraps urllib3's ProtocolError, which carries a message and the exception it
    stands for; their str() would print both, nested in tuples.
    """
    for _ in range(5):
        if error.args and isinstance(error.args[0], BaseException):
            error = error.args[0]
    first = error.args[0] if error.args else None
    text = first if isinstance(first, str) else str(error)
    return " ".join(text.split()) or type(error).__name__


def range_start(content_range: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes FIRST-LAST/SIZE`` header, if valid."""
    if not content_range:
        return None
    unit, _, rest = content_range.strip().partition(" ")
    first, dash, _ = rest.partition("-")
    if unit.lower() != "bytes" or not dash or not first.strip().isdigit():
        return None
    return int(first)


class ChunkReader:
    """A read-only file over an iterator of byte chunks, for ``images.upload``.

    glanceclient only calls ``read(n)``; a chunk that fits is returned as it is (no copy),
    a larger one is served in slices.
    """

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self._pending + b"".join(self._chunks)
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if len(self._pending) <= size:
            block, self._pending = self._pending, b""
        else:
            block = self._pending[:size]
            self._pending = self._pending[size:]
        return block


def guarded_source(
    chunks: Iterable[bytes],
    source: str,
    passthrough: tuple[type[Exception], ...] = (),
) -> Iterator[bytes]:
    """Yield ``chunks``; a failure to produce the next one becomes :class:`SourceError`.

    Exceptions of the ``passthrough`` types (and SourceError itself) keep their type.
    """
    iterator = iter(chunks)
    while True:
        try:
            block = next(iterator)
        except StopIteration:
            return
        except (SourceError, *passthrough):
            raise
        except Exception as error:
            raise SourceError(f"reading {source} failed: {error}") from error
        yield block


def closing_chunks(chunks: Iterable[bytes], close: Callable[[], Any]) -> Iterator[bytes]:
    """Yield ``chunks`` and call ``close`` when done, failed or abandoned."""
    try:
        yield from chunks
    finally:
        close()


def with_progress(
    chunks: Iterable[bytes], total: int, label: str, stream: TextIO | None = None
) -> Iterator[bytes]:
    """Show a progress bar (bytes, rate, ETA) on a terminal; pass through otherwise.

    Off a terminal (cron, CI, --parallel log files) only the log lines tell the story.
    """
    stream = stream if stream is not None else sys.stderr
    if not _is_terminal(stream):
        yield from chunks
        return
    columns, rows = _screen_size(stream)
    with tqdm(
        total=total or None,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=stream,
        leave=False,
        ncols=columns,
        nrows=rows,
    ) as bar:
        for block in chunks:
            yield block
            bar.update(len(block))


def _screen_size(stream: TextIO) -> tuple[int, int]:
    """Columns and rows of the terminal, 80x24 where it says 0 (a fresh pseudo-terminal).

    tqdm hides a bar whose line is beyond the terminal's rows, so a zero would mean no
    bar at all.
    """
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 80, 24
    return size.columns or 80, size.lines or 24


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def verified_chunks_pipelined(data: ImageData) -> Iterator[bytes]:
    """Yield the data, raising before the last chunk leaves if its MD5 is not the master's.

    Hashing in the sending thread makes every chunk wait for its hash before it goes
    out, which costs a quarter of the throughput at 160 MB/s. hashlib releases the GIL
    on large buffers, so a helper thread hashes while the socket sends; at most
    ``HASH_AHEAD`` chunks are in flight. The last chunk is held back until
    the digest is known, so wrong data never completes an upload.
    """
    digest = hashlib.md5(usedforsecurity=False)
    in_flight: collections.deque[concurrent.futures.Future[None]] = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="glancesync-md5") as hasher:
        pending: bytes | None = None
        for block in data.chunks():
            # One worker runs the updates in submission order.
            in_flight.append(hasher.submit(digest.update, block))
            while len(in_flight) > HASH_AHEAD:
                in_flight.popleft().result()
            if pending is not None:
                yield pending
            pending = block
        while in_flight:
            in_flight.popleft().result()
    check_checksum(data, digest.hexdigest())
    if pending is not None:
        yield pending


@dataclass
class GlanceStream(ImageData):
    """Image data streamed from the master region's Glance.

    Glance vouches for what it serves, and the target Glance computes the MD5 of what it
    receives, which is compared with the master's once the upload is done; so the data
    is not hashed again on the way, saving a CPU core's worth of work per 600 MB/s. Only
    its length is checked on the way: a truncated download never completes an upload.
    """

    on_close: Callable[[], Any] | None = field(default=None, repr=False)

    def close(self) -> None:
        super().close()
        if self.on_close is not None:
            self.on_close()


def size_checked_chunks(data: ImageData) -> Iterator[bytes]:
    """Yield the data, raising before the last chunk leaves if its length is wrong."""
    received, pending = 0, None
    for block in data.chunks():
        received += len(block)
        if pending is not None:
            yield pending
        pending = block
    if data.size and received != data.size:
        raise ChecksumMismatch(
            f"the data from {data.source} has {received} bytes, the master image has {data.size}"
        )
    if pending is not None:
        yield pending
