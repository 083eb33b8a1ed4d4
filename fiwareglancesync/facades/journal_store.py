"""The mock's store on disk: per region, a snapshot and a journal of the changes since.

A :class:`JournalStore` keeps, per region, a snapshot ``backup_<fullname>.csv`` in the
backup format and a journal ``.backup_<fullname>.csv.journal`` of the changes made since
(see :mod:`fiwareglancesync.facades.journal`), plus the ``project_ids.json`` of the
backup it was loaded from. A compacted store (every journal folded into its snapshot) is
itself a scenario that can be copied, inspected or replayed.

Each change appends one record to the region's journal under the region's exclusive
lock, so it costs the same whatever the size of the region. A store keeps the regions it
writes in memory (the four last used) and, before each operation, replays only the
records other processes appended since it last looked, or reads the region again when
another process compacted it. The snapshot is rewritten atomically (temporary file,
fsync, rename) and the journal emptied when the journal holds more records than the
region has images (and than COMPACT_MIN_RECORDS), when a store first reads a region
whose journal holds records (an earlier run's), when a region leaves its memory, at
``compact`` (the end of a region's sync) and at ``compact_all`` (the end of a run). A
read-only store does none of that: it reads each region once and writes nothing.

Durability: a record is written with one ``write`` and not fsynced. A killed process
leaves the whole record or a torn one, which replay ignores; a power cut may lose the
records written since the last compaction (the snapshot and the journal's head are
fsynced), never leave a state that was not one.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import io
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fiwareglancesync.backup import (
    PROJECT_IDS_FILE,
    BackupFormatError,
    backup_file_name,
    project_ids_text,
    read_project_ids,
    region_of_file,
)
from fiwareglancesync.errors import FacadeError, os_reason
from fiwareglancesync.facades.journal import (
    BASE,
    JournalError,
    RegionImages,
    check_record,
    decode,
    delete_record,
    effective,
    encode,
    header_epoch,
    journal_file_name,
    update_record,
    upload_record,
)
from fiwareglancesync.facades.mock_store import MockStore, clone, one_thread_at_a_time
from fiwareglancesync.image import CsvFormatError, Image, read_csv, write_csv

logger = logging.getLogger(__name__)

# The file that says "glancesync-mock made this directory": the loader replaces only a
# directory holding it (or an empty one), and removes only the files a store holds.
STORE_MARKER = ".glancesync-mock-store"
STORE_MARKER_TEXT = (
    "A GlanceSync mock store, made by glancesync-mock; replaced by it on --confirm.\n"
)
# Reading a region retries when another process compacts it meanwhile.
LOAD_ATTEMPTS = 100
_HEADER_BYTES = 256


def _store_error(action: str, path: Path, error: OSError) -> FacadeError:
    reason = os_reason(error)
    return FacadeError(f"cannot {action} the mock store {path}: {reason}")


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a snapshot from the one that replaced it (with the journal's epoch)."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _render(images: list[Image]) -> bytes:
    text = io.StringIO()
    write_csv(text, images)
    return text.getvalue().encode("utf-8")


def _md5(raw: bytes) -> str:
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


@dataclass
class _Region:
    """What a :class:`JournalStore` knows of one region, and since when."""

    images: RegionImages
    snapshot: tuple[int, int, int, int]  # _identity of the snapshot read
    md5: str  # of the snapshot's bytes
    epoch: str | None = None  # of the journal replayed (None: there was none)
    offset: int = 0  # bytes of that journal replayed
    pending: int = 0  # records counted on the snapshot: what a compaction folds in
    stale: bool = False  # the journal counts for nothing (its snapshot was replaced)


class JournalStore(MockStore):
    """A store in a directory: a snapshot and a journal per region, locked, fsynced.

    Processes (``--parallel`` children, the service's workers) share it: each change is
    made under the region's lock, and each look replays what the others appended.
    """

    # A region is compacted once its journal holds more records than this, or than the
    # region has images (so a compaction's cost is spread over as many operations).
    COMPACT_MIN_RECORDS = 4096
    # Regions kept in memory (the least recently used beyond are forgotten, compacted if
    # they have records): a sync works on one region at a time, the master's included.
    CACHED_REGIONS = 4

    def __init__(
        self,
        path: str | os.PathLike[str],
        read_only: bool = False,
    ):
        super().__init__()
        self.path = Path(path).absolute()
        # A read-only run (--show-status, --dry-run, --make-backup) writes nothing, not
        # even a compaction: each region is read once, replayed in memory, given away.
        self.read_only = read_only
        self._regions: collections.OrderedDict[str, _Region] = collections.OrderedDict()
        self._path_cache: dict[str, tuple[Path, Path, Path]] = {}
        self._looked: set[str] = set()  # regions read at least once

    # ------------------------------------------------------------------ project ids

    def project_ids(self) -> dict[str, str]:
        try:
            return read_project_ids(self.path)
        except BackupFormatError as error:
            raise FacadeError(str(error)) from None

    def set_project_ids(self, ids: dict[str, str]) -> None:
        self._write_file(self.path / PROJECT_IDS_FILE, project_ids_text(ids).encode("utf-8"))

    # ------------------------------------------------------------------ reading

    def region_names(self) -> list[str]:
        if not self.path.is_dir():
            raise FacadeError(f"the mock store {self.path} does not exist")
        try:
            names = [region_of_file(entry.name) for entry in self.path.iterdir()]
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        return sorted(name for name in names if name)

    def has_region(self, fullname: str) -> bool:
        return self._file(fullname).is_file()

    def _file(self, fullname: str) -> Path:
        return self._paths(fullname)[0]

    def _journal(self, fullname: str) -> Path:
        return self._paths(fullname)[1]

    def _paths(self, fullname: str) -> tuple[Path, Path, Path]:
        """Snapshot, journal and lock of a region (built once: every operation uses them)."""
        paths = self._path_cache.get(fullname)
        if paths is None:
            name = backup_file_name(fullname)
            paths = (
                self.path / name,
                self.path / journal_file_name(fullname),
                self.path / f".{name}.lock",
            )
            self._path_cache[fullname] = paths
        return paths

    @one_thread_at_a_time
    def read(self, fullname: str) -> list[Image] | None:
        """The images of a region, or None when there is no such region.

        A region this store does not hold in memory is read from its files and given
        away, not kept: ``--show-status`` reads every region once, and a sync writes
        in few of those it reads. A journal left with records by an earlier run is
        compacted then (which keeps the region).
        """
        if fullname not in self._regions:
            region = self._build(fullname, locked=False, detached=True)
            if region is None:
                return None
            if self.read_only or not region.pending or fullname in self._looked:
                self._looked.add(fullname)
                return region.images.images()  # new objects, nobody else holds them
        region = self._current(fullname, locked=False)  # kept (its journal compacted)
        return None if region is None else [clone(image) for image in region.images.images()]

    def _current(self, fullname: str, locked: bool) -> _Region | None:
        """The region as its snapshot and journal say now (None: no such region).

        ``locked``: the caller holds the region's lock, so nobody writes meanwhile and a
        torn last record is a dead writer's, to be cut off.
        """
        try:
            stat = os.stat(self._file(fullname))
        except FileNotFoundError:
            self._regions.pop(fullname, None)
            return None
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        region = self._regions.get(fullname)
        try:
            fresh = region is not None and region.snapshot == _identity(stat)
            if region is not None and fresh and self._catch_up(fullname, region, locked):
                self._regions.move_to_end(fullname)
                return region
            return self._load(fullname, locked)
        except BaseException:
            # Half-replayed: forget it, the next look reads the region again.
            self._regions.pop(fullname, None)
            raise

    def _catch_up(self, fullname: str, region: _Region, locked: bool) -> bool:
        """Replay the records appended since ``region`` was read; False: read it again."""
        try:
            descriptor = os.open(self._journal(fullname), os.O_RDONLY)
        except FileNotFoundError:
            return region.epoch is None
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        try:
            if header_epoch(os.pread(descriptor, _HEADER_BYTES, 0)) != region.epoch:
                return False  # compacted (or replaced) by another process
            size = os.fstat(descriptor).st_size
            if region.stale or size == region.offset:
                return True
            if size < region.offset:
                return False
            data = os.pread(descriptor, size - region.offset, region.offset)
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        finally:
            os.close(descriptor)
        records, used = decode(data)
        self._replay(fullname, region, records)
        region.offset += used
        if locked and used < len(data):
            self._cut(fullname, region.offset)
        return True

    def _replay(self, fullname: str, region: _Region, records: list[list[str]]) -> None:
        for record in records:
            if record[0] == BASE:
                continue
            try:
                region.images.apply(record, fullname)
            except JournalError as error:
                raise FacadeError(
                    f"the mock store file {self._journal(fullname)} cannot be read: {error}"
                ) from None
            region.pending += 1

    def _cut(self, fullname: str, offset: int) -> None:
        """Drop a torn last record (its writer died): the next record goes after ours."""
        try:
            os.truncate(self._journal(fullname), offset)
        except OSError as error:
            raise _store_error("write", self.path, error) from None

    def _load(self, fullname: str, locked: bool, compact: bool = True) -> _Region | None:
        """Read the region from its files and keep it in memory.

        Records found at this store's first look at the region are an earlier run's:
        they are compacted then (later looks find other processes' work in progress).
        """
        self._regions.pop(fullname, None)
        region = self._build(fullname, locked)
        if region is None:
            return None
        self._remember(fullname, region)
        compact = compact and fullname not in self._looked
        self._looked.add(fullname)
        if region.pending and compact:
            self._compact_after_load(fullname, region, locked)
            if fullname not in self._regions:  # the compaction failed half-way
                return self._load(fullname, locked, compact=False)
        return self._regions.get(fullname)

    def _remember(self, fullname: str, region: _Region) -> None:
        self._regions.pop(fullname, None)
        self._regions[fullname] = region
        self._evict()

    def _build(self, fullname: str, locked: bool, detached: bool = False) -> _Region | None:
        """The region as its snapshot and journal hold it, or None when there is none.

        ``detached``: for a listing that will not be kept, so the snapshot's MD5 is left
        out (empty) unless a journal needs it.
        """
        for _ in range(LOAD_ATTEMPTS):
            read = self._read_files(fullname, locked)
            if read is not None:
                break
        else:
            raise FacadeError(f"the mock store file {self._file(fullname)} keeps changing")
        raw, stat, journal = read
        if raw is None or stat is None:
            return None
        md5 = "" if detached and journal is None else _md5(raw)
        region = _Region(self._parse(fullname, raw), _identity(stat), md5)
        if journal is not None:
            records, used = decode(journal)
            region.epoch, region.offset = header_epoch(journal), used
            counted = effective(records, region.md5) if region.epoch else None
            region.stale = counted is None
            self._replay(fullname, region, counted or [])
            if locked and not region.stale and used < len(journal):
                self._cut(fullname, used)
        return region

    def _read_files(
        self, fullname: str, locked: bool
    ) -> tuple[bytes | None, os.stat_result | None, bytes | None] | None:
        """(snapshot bytes or None, its stat, journal bytes or None); None: raced."""
        path = self._file(fullname)
        try:
            with open(path, "rb") as snapshot:
                raw, stat = snapshot.read(), os.fstat(snapshot.fileno())
                try:
                    with open(self._journal(fullname), "rb") as stream:
                        journal = stream.read()
                except FileNotFoundError:
                    journal = None
                # Held open, the snapshot's inode cannot be reused: the same inode at the
                # path means no compaction replaced it while the journal was read.
                if not locked and os.stat(path).st_ino != stat.st_ino:
                    return None
        except FileNotFoundError:
            return None, None, None
        except OSError as error:
            raise _store_error("read", self.path, error) from None
        return raw, stat, journal

    def _parse(self, fullname: str, raw: bytes) -> RegionImages:
        path = self._file(fullname)
        try:
            images = read_csv(io.StringIO(raw.decode("utf-8")), str(path))
        except (CsvFormatError, UnicodeDecodeError) as error:
            raise FacadeError(f"the mock store file {path} cannot be read: {error}") from None
        for image in images:
            image.region = fullname
        return RegionImages(images)

    def _evict(self) -> None:
        """Forget the least recently used regions beyond CACHED_REGIONS."""
        while len(self._regions) > self.CACHED_REGIONS:
            fullname, region = self._regions.popitem(last=False)
            if region.pending:
                self._compact_evicted(fullname, region)

    def _compact_evicted(self, fullname: str, region: _Region) -> None:
        """Compact a region leaving memory, unless someone holds its lock (never wait)."""
        try:
            with self._try_locked(fullname) as mine:
                if not mine:
                    return
                unchanged = region.snapshot == _identity(os.stat(self._file(fullname)))
                current = unchanged and self._catch_up(fullname, region, locked=True)
                if current and region.pending:
                    self._compact(fullname, region)
        except (FacadeError, OSError) as error:
            logger.debug("%s: the mock store journal is not compacted: %s", fullname, error)

    def _compact_after_load(self, fullname: str, region: _Region, locked: bool) -> None:
        """Fold a journal left by an earlier run into its snapshot, if nobody is writing."""
        try:
            if locked:
                self._compact(fullname, region)
                return
            with self._try_locked(fullname) as mine:
                if mine:
                    current = self._current(fullname, locked=True)
                    if current is not None and current.pending:
                        self._compact(fullname, current)
        except FacadeError as error:  # a read-only store, a full disk: reads go on
            logger.debug("%s: the mock store journal is not compacted: %s", fullname, error)

    # ------------------------------------------------------------------ changing

    @one_thread_at_a_time
    def add_image(self, fullname: str, image: Image) -> Image | None:
        made: list[Image] = []

        def record(images: RegionImages) -> list[str]:
            made.append(image.copy(id=images.next_id(image.name)))
            return upload_record(made[0])

        return None if self._change(fullname, record) is None else made[0].copy()

    @one_thread_at_a_time
    def update_image(self, fullname: str, image: Image) -> bool | None:
        return self._change(
            fullname, lambda images: update_record(image) if image.id in images else None
        )

    @one_thread_at_a_time
    def delete_image(self, fullname: str, image_id: str) -> bool | None:
        return self._change(
            fullname, lambda images: delete_record(image_id) if image_id in images else None
        )

    def _change(
        self, fullname: str, make: Callable[[RegionImages], list[str] | None]
    ) -> bool | None:
        """Append the record ``make`` builds (None: nothing to do) and replay it.

        Returns None when there is no such region, False when nothing was to be done.
        """
        with self.locked(fullname):
            region = self._current(fullname, locked=True)
            if region is None:
                return None
            record = make(region.images)
            if record is None:
                return False
            try:
                check_record(record)
            except JournalError as error:
                raise FacadeError(f"{fullname}: the mock store cannot hold it: {error}") from None
            self._append(fullname, region, record)
            if region.pending > max(self.COMPACT_MIN_RECORDS, len(region.images)):
                try:
                    self._compact(fullname, region)
                except FacadeError as error:  # the change is made: the journal holds it
                    logger.debug("%s: the mock store journal is not compacted: %s", fullname, error)
        return True

    def _append(self, fullname: str, region: _Region, record: list[str]) -> None:
        """Write one record, whole or not at all, then apply it to the region in memory."""
        if region.epoch is None or region.stale:
            self._new_journal(fullname, region.md5, region)
        line = encode(record)
        try:
            descriptor = os.open(self._journal(fullname), os.O_WRONLY | os.O_APPEND)
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        try:
            written = 0
            while written < len(line):
                written += os.write(descriptor, line[written:])
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, region.offset)  # none of the record, then
            if isinstance(error, OSError):
                raise _store_error("write", self.path, error) from None
            raise
        finally:
            os.close(descriptor)
        try:
            region.images.apply(record, fullname)
            region.offset += len(line)
            region.pending += 1
        except BaseException:
            self._regions.pop(fullname, None)  # the next look replays it from the journal
            raise

    def _new_journal(self, fullname: str, md5: str, region: _Region | None) -> None:
        """Start an empty journal on the snapshot with this MD5, with a new epoch."""
        epoch = uuid.uuid4().hex
        header = encode([BASE, md5, epoch])
        self._write_file(self._journal(fullname), header)
        if region is not None:
            region.epoch, region.offset, region.pending, region.stale = (
                epoch,
                len(header),
                0,
                False,
            )

    # ------------------------------------------------------------------ compaction

    @one_thread_at_a_time
    def compact(self, fullname: str) -> None:
        """Fold the region's journal into its snapshot (a no-op when there is nothing,
        or the store is read-only)."""
        if self.read_only:
            return
        with self.locked(fullname):
            region = self._current(fullname, locked=True)
            if region is not None and region.pending:
                self._compact(fullname, region)

    @one_thread_at_a_time
    def compact_all(self) -> None:
        """Compact every region this store has seen records for; failures are logged."""
        for fullname in [name for name, region in self._regions.items() if region.pending]:
            try:
                self.compact(fullname)
            except FacadeError as error:
                logger.debug("%s: the mock store journal is not compacted: %s", fullname, error)

    def _compact(self, fullname: str, region: _Region) -> None:
        """Write the region as its new snapshot, then start an empty journal (lock held)."""
        try:
            raw = _render(region.images.images())
            md5 = _md5(raw)
            self._replace_snapshot(fullname, raw, md5)
            region.snapshot = _identity(os.stat(self._file(fullname)))
            region.md5 = md5
            self._new_journal(fullname, md5, region)
            self._sync_directory()
        except BaseException as error:
            self._regions.pop(fullname, None)  # half-way: the next look reads the files
            if isinstance(error, OSError):
                raise _store_error("write", self.path, error) from None
            raise

    def _replace_snapshot(self, fullname: str, raw: bytes, md5: str) -> bool:
        """Put ``raw`` in the snapshot; True when the region has a journal (now sealed).

        The journal is first sealed with ``["base", md5]``: whether a crash comes before
        or after the rename, its records then count once, on the old snapshot or in the
        new one, never twice. (A new snapshot with another MD5 makes the old journal
        stale anyway; the seal matters when ``write`` gives a region back its old bytes.)
        """
        sealed = self._seal_journal(fullname, md5)
        self._write_file(self._file(fullname), raw)
        return sealed

    def _seal_journal(self, fullname: str, md5: str) -> bool:
        try:
            descriptor = os.open(self._journal(fullname), os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        try:
            size = os.fstat(descriptor).st_size
            data = os.pread(descriptor, size, 0)
            _, used = decode(data)
            if header_epoch(data) is not None:
                os.ftruncate(descriptor, used)
                os.write(descriptor, encode([BASE, md5]))
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        finally:
            os.close(descriptor)
        return True

    # ------------------------------------------------------------------ whole regions

    @one_thread_at_a_time
    def write(self, fullname: str, images: list[Image]) -> None:
        raw = _render(images)
        with self.locked(fullname):
            self._replace_region(fullname, raw)

    @one_thread_at_a_time
    def import_file(self, fullname: str, source: Path) -> None:
        """Take a (checked) backup file as the region's content, byte for byte."""
        with open(source, "rb") as original:
            raw = original.read()
        # The loader fills a directory of its own: no lock (nor lock file) is needed.
        self._replace_region(fullname, raw)

    def _replace_region(self, fullname: str, raw: bytes) -> None:
        self._regions.pop(fullname, None)
        md5 = _md5(raw)
        if self._replace_snapshot(fullname, raw, md5):
            self._new_journal(fullname, md5, None)

    # ------------------------------------------------------------------ files and locks

    def lock_key(self, fullname: str) -> str | None:
        return f"mock {self.path} {fullname}"

    def _ensure_directory(self) -> None:
        """Create the store's directory (and mark it as a store) when it is missing."""
        if self.path.is_dir():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / STORE_MARKER).write_text(STORE_MARKER_TEXT, encoding="utf-8")

    def _write_file(self, destination: Path, content: bytes) -> None:
        """Write a temporary file, fsync it, rename it over ``destination``."""
        try:
            self._ensure_directory()
            descriptor, temporary = tempfile.mkstemp(
                dir=self.path, prefix=".tmp-", suffix=destination.suffix
            )
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, destination)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(error, OSError):
                raise _store_error("write", self.path, error) from None
            raise

    def _sync_directory(self) -> None:
        """Make the renames durable (a power cut after this keeps the new snapshot)."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as error:
            raise _store_error("write", self.path, error) from None

    @contextlib.contextmanager
    def _lock_file(self, fullname: str) -> Iterator[int]:
        """An open descriptor of the region's lock file (the file is made if need be)."""
        try:
            self._ensure_directory()
            descriptor = os.open(
                self._paths(fullname)[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666
            )
        except OSError as error:
            raise _store_error("write", self.path, error) from None
        try:
            yield descriptor
        finally:
            os.close(descriptor)

    @contextlib.contextmanager
    def locked(self, fullname: str) -> Iterator[None]:
        """Hold the region's lock across a read-modify-write, across processes."""
        with self._lock_file(fullname) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _try_locked(self, fullname: str) -> Iterator[bool]:
        """The region's lock if it is free now (False: someone holds it, go on without)."""
        with self._lock_file(fullname) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
