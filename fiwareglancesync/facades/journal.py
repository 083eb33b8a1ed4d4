"""The mock store's journal: what changed in a region since its snapshot was written.

Each region of a persistent store is a snapshot, ``backup_<fullname>.csv`` (a backup
file), and a journal beside it, ``.backup_<fullname>.csv.journal``: the uploads, updates
and deletes made since, one record each, appended. A change then costs one short write,
whatever the size of the region; the snapshot is rewritten (compacted) only now and then.

A record is one line: the CRC-32 of its payload in 8 hex digits, a space, the payload,
``\\n``. The payload is a JSON array of strings (ASCII only, so a line holds no other line
break): the operation, then its cells in the backup's own format, so a replayed image
reads back exactly as it would from the snapshot. A line without its ``\\n``, or whose
CRC does not match, is a record that was being written when its process died: it and
whatever follows are ignored (and cut off by the next writer).

``base`` records tie a journal to a snapshot: ``["base", <MD5 of the snapshot's bytes>,
<epoch>]`` opens every journal; ``["base", <MD5>]`` is appended just before a snapshot
is replaced. The records that count for a snapshot are those after the last ``base``
naming its MD5; a journal with none is stale (its snapshot was replaced) and counts for
nothing. The epoch, new with every journal file, tells a reader the file was replaced.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence

from fiwareglancesync.backup import backup_file_name
from fiwareglancesync.image import (
    PRIVATE,
    PUBLIC,
    Image,
    glance_cells,
    image_from_row,
    parse_properties,
    set_glance_fields,
)

JOURNAL_SUFFIX = ".journal"
BASE, UPLOAD, UPDATE, DELETE = "base", "upload", "update", "delete"
# Cells after the operation: an upload holds a whole backup row.
# An update: id, name, is_public, properties, and (since backup format 2) the Glance
# cells of the row (journals written before hold the first four only).
_ARITY = {BASE: (1, 2), UPLOAD: (9, 18), UPDATE: (4, 13), DELETE: (1,)}
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_HEADER_BYTES = 256  # enough for the first record: ["base", md5, epoch]


class JournalError(ValueError):
    """A record whose CRC is right but whose content cannot be applied."""


def journal_file_name(fullname: str) -> str:
    return f".{backup_file_name(fullname)}{JOURNAL_SUFFIX}"


def encode(record: Sequence[str]) -> bytes:
    payload = _ENCODER.encode(list(record)).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode_line(line: bytes) -> list[str] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    payload = line[9:]
    if zlib.crc32(payload) != crc:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not (isinstance(record, list) and record and all(isinstance(c, str) for c in record)):
        return None
    if len(record) - 1 not in _ARITY.get(record[0], ()):
        return None
    return record


def decode(data: bytes) -> tuple[list[list[str]], int]:
    """The whole records at the start of ``data``, and how many bytes they take."""
    records: list[list[str]] = []
    used = 0
    while True:
        end = data.find(b"\n", used)
        if end < 0:
            return records, used
        record = _decode_line(data[used:end])
        if record is None:
            return records, used
        records.append(record)
        used = end + 1


def header_epoch(data: bytes) -> str | None:
    """The epoch of a journal from its first bytes (None: not a journal's start)."""
    records, _ = decode(data[: data.find(b"\n") + 1])
    if records and records[0][0] == BASE and len(records[0]) == 3:
        return records[0][2]
    return None


def effective(records: list[list[str]], snapshot_md5: str) -> list[list[str]] | None:
    """The records that count on the snapshot with this MD5; None when the journal is stale."""
    for index in range(len(records) - 1, -1, -1):
        record = records[index]
        if record[0] == BASE and record[1] == snapshot_md5:
            return [r for r in records[index + 1 :] if r[0] != BASE]
    return None


def upload_record(image: Image) -> list[str]:
    return [UPLOAD, *image.to_row()]


def update_record(image: Image) -> list[str]:
    return [
        UPDATE,
        image.id,
        image.name,
        str(bool(image.is_public)),
        repr(image.user_properties),
        *glance_cells(image),
    ]


def apply_update(stored: Image, image: Image) -> None:
    """What an update changes of a stored image: its metadata, not its data or formats.

    Like Glance, ``protected`` is only ever set, and members are only ever added.
    """
    stored.name = image.name
    if image.visibility_known:
        stored.visibility, stored.visibility_known = image.visibility, True
    else:  # public-or-not only (as the Glance facade does): shared or community stays so
        stored.visibility = stored.made_public(image.is_public)
    stored.user_properties = dict(image.user_properties)
    stored.tags = tuple(image.tags)
    stored.hidden = image.hidden
    stored.protected = stored.protected or image.protected
    stored.min_disk = image.min_disk
    stored.min_ram = image.min_ram
    stored.members = tuple(sorted(set(stored.members) | set(image.members)))


def delete_record(image_id: str) -> list[str]:
    return [DELETE, image_id]


class RegionImages:
    """The images of a region in listing order, found by id in constant time.

    A backup may hold two rows with one id: like the list it replaces, an update changes
    the first of them and a delete removes them all.
    """

    def __init__(self, images: Iterable[Image] = ()):
        self._rows: dict[int, Image] = dict(enumerate(images))
        self._serial = len(self._rows)
        # Built at the first look-up by id: a region that is only listed needs none.
        self._index: dict[str, list[int]] | None = None

    @property
    def _by_id(self) -> dict[str, list[int]]:
        if self._index is None:
            index: dict[str, list[int]] = {}
            for key, image in self._rows.items():
                index.setdefault(image.id, []).append(key)
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._by_id

    def images(self) -> list[Image]:
        return list(self._rows.values())

    def add(self, image: Image) -> None:
        self._rows[self._serial] = image
        if self._index is not None:
            self._index.setdefault(image.id, []).append(self._serial)
        self._serial += 1

    def first(self, image_id: str) -> Image | None:
        keys = self._by_id.get(image_id)
        return self._rows[keys[0]] if keys else None

    def remove(self, image_id: str) -> bool:
        keys = self._by_id.pop(image_id, None)
        for key in keys or ():
            del self._rows[key]
        return bool(keys)

    def next_id(self, name: str) -> str:
        """``<n>$<name>`` with the smallest n >= 1 that is not already an id of the region.

        The counter is per name: uploading ``image02`` where ``1$image01`` exists gives
        ``1$image02``, as the original mock did.
        """
        number = 1
        while f"{number}${name}" in self._by_id:
            number += 1
        return f"{number}${name}"

    def apply(self, record: list[str], fullname: str) -> None:
        """Replay one upload, update or delete record."""
        operation = record[0]
        try:
            if operation == UPLOAD:
                image = image_from_row(record[1:])
                image.region = fullname
                self.add(image)
            elif operation == UPDATE:
                image_id, name, is_public, cell = record[1:5]
                visibility = PUBLIC if is_public == "True" else PRIVATE
                update = Image(name, image_id, fullname, visibility=visibility)
                update.user_properties = parse_properties(cell)
                stored = self.first(image_id)
                if len(record) > 5:
                    set_glance_fields(update, record[5:])
                elif stored is not None:  # a record of format 1 changed only these
                    update = stored.copy(
                        name=update.name,
                        visibility=update.visibility,
                        visibility_known=False,
                        user_properties=update.user_properties,
                    )
                if stored is not None:
                    apply_update(stored, update)
            elif operation == DELETE:
                self.remove(record[1])
        except ValueError as error:  # CsvFormatError: the row of a record
            raise JournalError(f"a {operation} record cannot be read: {error}") from None


def check_record(record: list[str]) -> None:
    """Refuse, before it is written, a record that could not be replayed."""
    RegionImages().apply(record, "")
