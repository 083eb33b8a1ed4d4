"""The image model shared by the planner, the facades and the backup CSV format.

A backup row of format 1 (the original tool's) is ``region, name, id, status, size,
checksum, owner, is_public, user_properties``; the last cell is the Python literal of a
dict. It is read with a small literal parser (JSON fast path, ``ast.literal_eval``
otherwise), never ``eval``. Format 2 adds nine cells for what Glance v2 knows besides:
``visibility, tags, os_hidden, protected, min_disk, min_ram, disk_format,
container_format, members``; an empty cell is the field's default, so a format-2 row of
an image with nothing more to say is its format-1 row and eight commas. A format-2 file
starts with its header line. Both formats are read, row by row.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import gc
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from fiwareglancesync.booleans import parse_bool

CSV_FIELDS_V1 = (
    "region",
    "name",
    "id",
    "status",
    "size",
    "checksum",
    "owner",
    "is_public",
    "user_properties",
)
GLANCE_FIELDS = (
    "visibility",
    "tags",
    "os_hidden",
    "protected",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "members",
)
CSV_FIELDS = CSV_FIELDS_V1 + GLANCE_FIELDS
FORMATS = (1, 2)
LATEST_FORMAT = 2
PUBLIC, PRIVATE, SHARED, COMMUNITY = "public", "private", "shared", "community"
VISIBILITIES = (PUBLIC, PRIVATE, SHARED, COMMUNITY)
_EMPTY_GLANCE_CELLS = ("",) * len(GLANCE_FIELDS)

# Properties that hold the UUID of another image of the same region.
AMI_PROPERTIES = ("kernel_id", "ramdisk_id")


class CsvFormatError(ValueError):
    """A backup row that cannot be read; the message names what is wrong."""


@dataclass
class Image:
    """An image as GlanceSync sees it, whatever the facade it came from.

    ``user_properties`` holds the custom properties, ``kernel_id`` and ``ramdisk_id``
    included (Glance v2 has them as attributes; the facade folds them in here).
    ``hidden`` is Glance's ``os_hidden``. ``visibility`` is one of Glance's four;
    ``is_public`` is read from it. Where the source tells only public or not (a format-1
    backup row, Glance v1) the visibility is public or private and ``visibility_known``
    is false: the row needs no visibility cell, and only public-or-not is compared with
    a copy (see :mod:`fields`).
    ``members``: the projects an image is shared with (and that accepted it), by id.
    """

    name: str
    id: str
    region: str = ""
    status: str = "active"
    size: int = 0
    checksum: str | None = None
    owner: str = ""
    visibility: str = PRIVATE
    user_properties: dict[str, Any] = field(default_factory=dict)
    disk_format: str | None = None
    container_format: str | None = None
    min_disk: int = 0
    min_ram: int = 0
    hidden: bool = False
    # Glance's strong hash (os_hash_algo, os_hash_value): the master's is the reference a
    # copy is verified with. Not in a backup row; an image read from one has none.
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    visibility_known: bool = False
    tags: tuple[str, ...] = ()
    protected: bool = False
    members: tuple[str, ...] = ()

    @property
    def is_public(self) -> bool:
        return self.visibility == PUBLIC

    @property
    def known_visibility(self) -> str | None:
        """The visibility as Glance v2 tells it; None where only public-or-not is known."""
        return self.visibility if self.visibility_known else None

    def made_public(self, public: bool) -> str:
        """This image's visibility once made public, or not: public, else private, but a
        shared or community image stays so (public-or-not is all Glance v1 could set)."""
        if public:
            return PUBLIC
        return self.visibility if self.visibility in (SHARED, COMMUNITY) else PRIVATE

    def copy(self, **changes: Any) -> Image:
        """A copy with its own properties dict, so callers can change it safely.

        A visibility given is Glance's (known) unless ``visibility_known`` says otherwise;
        ``is_public=`` may be given instead, as Glance v1 did: see :meth:`made_public`.
        """
        changes.setdefault("user_properties", dict(self.user_properties))
        if "visibility" in changes:
            changes.setdefault("visibility_known", True)
        if "is_public" in changes:
            public = changes.pop("is_public")
            changes.setdefault("visibility", self.made_public(public))
        return dataclasses.replace(self, **changes)

    @property
    def size_mb(self) -> int:
        return int(self.size / 1048576)

    def to_row(self, version: int = LATEST_FORMAT) -> list[str]:
        row = [
            self.region,
            self.name,
            self.id,
            self.status,
            str(self.size),
            self.checksum or "",
            self.owner or "",
            str(bool(self.is_public)),
            repr(self.user_properties),
        ]
        if version >= 2:
            row += glance_cells(self)
        return row


def _list_cell(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False) if values else ""


def glance_cells(image: Image) -> list[str]:
    """The format-2 cells of ``image``: empty where the field has its default."""
    return [
        image.known_visibility or "",
        _list_cell(image.tags),
        "True" if image.hidden else "",
        "True" if image.protected else "",
        str(image.min_disk) if image.min_disk else "",
        str(image.min_ram) if image.min_ram else "",
        image.disk_format or "",
        image.container_format or "",
        _list_cell(image.members),
    ]


def same_owner(owner: str | None, project_id: str | None) -> bool:
    """Compare project ids the way Keystone backups need: leading zeros do not count."""
    if owner == project_id:
        return True
    return (owner or "").lstrip("0") == (project_id or "").lstrip("0")


# A flat dict of strings, JSON numbers, booleans and None: by far the most common
# properties cell. Such a cell is turned into JSON and read by the C parser, ten times
# faster than literal_eval; anything else goes through literal_eval.
_STR = r"'[^'\\\"\n]*'|\"[^\"\\'\n]*\""
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_VAL = rf"(?:{_STR}|{_NUM}|True|False|None)"
_PAIR = rf"\s*(?:{_STR})\s*:\s*{_VAL}\s*"
_FLAT_DICT = re.compile(rf"\{{(?:{_PAIR}(?:,{_PAIR})*,?)?\s*\}}")
_TOKEN = re.compile(rf"{_STR}|True|False|None")
_JSON_WORDS = {"True": "true", "False": "false", "None": "null"}
# strict=False: a Python string may hold a raw tab, which strict JSON refuses.
_JSON = json.JSONDecoder(strict=False)


def _to_json_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token in _JSON_WORDS:
        return _JSON_WORDS[token]
    return '"' + token[1:-1] + '"'


# Property values a backup can hold: what Glance stores (strings), what backups of Glance
# v1 held (numbers, booleans, None), and lists and dicts of those. Anything else (a set,
# bytes, a complex or non-finite number) could not be written back as it was read.
_SCALARS = (str, bool, int, float, type(None))
# A number literal that may overflow to infinity: an exponent of three digits or more, or a
# mantissa longer than any finite float. Only cells with one are checked value by value.
_HUGE_NUMBER = re.compile(r"[0-9][eE]\+?[0-9]{3}|[0-9]{300}")


def _check_value(key: Any, value: Any) -> None:
    if not isinstance(key, str):
        _check_key(key)
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(key, item)
        return
    if isinstance(value, dict):
        for inner_key, item in value.items():
            _check_value(inner_key, item)
        return
    if isinstance(value, complex):
        raise CsvFormatError(f"user_properties[{key!r:.40}] is a complex number")
    if not isinstance(value, _SCALARS):
        raise CsvFormatError(
            f"user_properties[{key!r:.40}] is a {type(value).__name__}: only strings, "
            "numbers, booleans, None, lists and dicts can be stored"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise CsvFormatError(f"user_properties[{key!r:.40}] is not a finite number ({value})")


def _check_key(key: Any) -> None:
    if isinstance(key, complex) or not isinstance(key, _SCALARS):
        raise CsvFormatError(f"user_properties has a key that is not a plain value: {key!r:.40}")
    if isinstance(key, float) and not math.isfinite(key):
        raise CsvFormatError(f"user_properties has a key that is not a finite number ({key})")


def check_properties(properties: dict[Any, Any]) -> dict[str, Any]:
    """Refuse what a backup could never have written: the loader takes only that."""
    for key, value in properties.items():
        if value.__class__ is not str or key.__class__ is not str:
            _check_value(key, value)
    return properties


def parse_properties(text: str) -> dict[str, Any]:
    """Read the ``user_properties`` cell: the literal of a dict, never code."""
    text = text.strip()
    if not text:
        return {}
    if _FLAT_DICT.fullmatch(text):
        value = _JSON.decode(_TOKEN.sub(_to_json_token, text))
        return check_properties(value) if _HUGE_NUMBER.search(text) else value
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CsvFormatError(f"user_properties is not a dict literal: {text[:60]!r}") from None
    if not isinstance(value, dict):
        raise CsvFormatError(f"user_properties is not a dict literal: {text[:60]!r}")
    return check_properties(value)


def _parse_is_public(text: str) -> bool:
    # An empty cell (old backups have them) means a private image: the one value besides
    # the boolean words that is_public accepts.
    if not text.strip():
        return False
    try:
        return parse_bool(text)
    except ValueError:
        raise CsvFormatError(f"is_public is not True or False: {text[:20]!r}") from None


def _parse_size(text: str) -> int:
    text = text.strip()
    if text in ("", "None"):
        return 0
    try:
        size = int(float(text)) if "." in text else int(text)
    except (ValueError, OverflowError):
        raise CsvFormatError(f"size is not a number: {text[:20]!r}") from None
    if size < 0:
        raise CsvFormatError(f"size is negative: {text[:20]!r}")
    return size


def _build(row: list[str], properties: dict[str, Any]) -> Image:
    # Positional arguments and inline fast paths: this runs once per row of every region.
    region, name, image_id, status, size, checksum, owner, is_public = row[:8]
    image = Image(
        name,
        image_id,
        region,
        status,
        int(size) if size.isascii() and size.isdigit() else _parse_size(size),
        None if checksum in ("", "None") else checksum,
        "" if owner == "None" else owner,
        PUBLIC if is_public == "True" or _parse_is_public(is_public) else PRIVATE,
        properties,
    )
    if len(row) > len(CSV_FIELDS_V1):
        extra = row[len(CSV_FIELDS_V1) :]
        if extra != list(_EMPTY_GLANCE_CELLS):
            set_glance_fields(image, extra)
    return image


def _parse_list_cell(text: str, field_name: str) -> tuple[str, ...]:
    text = text.strip()
    if not text:
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        raise CsvFormatError(f"{field_name} is not a JSON list: {text[:40]!r}") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CsvFormatError(f"{field_name} is not a list of strings: {text[:40]!r}")
    return tuple(value)


def _parse_flag(text: str, field_name: str) -> bool:
    if not text.strip():
        return False
    try:
        return parse_bool(text)
    except ValueError:
        raise CsvFormatError(f"{field_name} is not True or False: {text[:20]!r}") from None


def _parse_count(text: str, field_name: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit():
        raise CsvFormatError(f"{field_name} is not a whole number: {text[:20]!r}")
    return int(text)


def set_glance_fields(image: Image, cells: list[str]) -> None:
    """Read the format-2 cells into ``image``; a visibility cell overrides ``is_public``."""
    visibility, tags, hidden, protected, min_disk, min_ram, disk, container, members = cells
    visibility = visibility.strip().lower()
    if visibility:
        if visibility not in VISIBILITIES:
            raise CsvFormatError(f"visibility is not one of {', '.join(VISIBILITIES)}")
        image.visibility = visibility
        image.visibility_known = True
    image.tags = _parse_list_cell(tags, "tags")
    image.hidden = _parse_flag(hidden, "os_hidden")
    image.protected = _parse_flag(protected, "protected")
    image.min_disk = _parse_count(min_disk, "min_disk")
    image.min_ram = _parse_count(min_ram, "min_ram")
    image.disk_format = disk.strip() or None
    image.container_format = container.strip() or None
    image.members = _parse_list_cell(members, "members")


def _row_length_problem(row: list[str]) -> str | None:
    if len(row) in (len(CSV_FIELDS_V1), len(CSV_FIELDS)):
        return None
    return (
        f"expected {len(CSV_FIELDS_V1)} fields (format 1) or {len(CSV_FIELDS)} "
        f"(format 2), found {len(row)}"
    )


def image_from_row(row: list[str]) -> Image:
    """Build an image from one backup row, of either format."""
    problem = _row_length_problem(row)
    if problem:
        raise CsvFormatError(problem)
    return _build(row, parse_properties(row[len(CSV_FIELDS_V1) - 1]))


def _parse_property_column(cells: list[str]) -> list[dict[str, Any]] | None:
    """All cells at once when they all take the fast path (one JSON decode).

    In the fast grammar no string holds a quote, so every quote is a delimiter: turning
    ' into " and the words outside strings into JSON words gives valid JSON.
    """
    cells = [cell.strip() or "{}" for cell in cells]
    if not all(map(_FLAT_DICT.fullmatch, cells)):
        return None
    joined = "[" + ",".join(cells) + "]"
    parts = joined.replace("'", '"').split('"')
    parts[::2] = [
        part.replace("True", "true").replace("False", "false").replace("None", "null")
        for part in parts[::2]
    ]
    values = _JSON.decode('"'.join(parts))
    if len(values) != len(cells):
        return None
    if _HUGE_NUMBER.search(joined):
        for value in values:
            check_properties(value)
    return values


def _rows_with_lines(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with their line numbers; the header line, if any, is skipped.

    Fields of any size are read: the writer puts no limit on them either.
    """
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text))
    first = True
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise CsvFormatError(f"{source}, line {reader.line_num}: {error}") from None
        if _is_blank(row):
            continue
        if first and is_header(row):
            first = False
            continue
        first = False
        yield reader.line_num, row


def _is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def is_header(row: list[str]) -> bool:
    """The line ``region,name,id,...`` above the rows (of either format)."""
    for fields in (CSV_FIELDS_V1, CSV_FIELDS):
        if len(row) == len(fields) and all(
            cell.strip().lower() == name for cell, name in zip(row, fields, strict=True)
        ):
            return True
    return False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    Collections triggered by allocation alone rescan every live object: with a million
    images that made reading and planning grow faster than the number of images.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_csv(stream: TextIO, source: str = "<csv>") -> list[Image]:
    """The images of a backup file; errors name the source and line."""
    with gc_paused():
        return _read_csv(stream.read(), source)


def _plain_rows(text: str) -> list[list[str]] | None:
    """The non-blank rows after any header, read at C speed (None: a CSV error, which
    the slow reader names with its line)."""
    csv.field_size_limit(sys.maxsize)
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text)) if len(row) > 1 or (row and row[0].strip())
        ]
    except csv.Error:
        return None
    return rows[1:] if rows and is_header(rows[0]) else rows


def _read_csv(text: str, source: str) -> list[Image]:
    rows = _plain_rows(text)
    if rows is None:  # the slow reader below says where
        rows = [row for _, row in _rows_with_lines(text, source)]
    column = None
    cell = len(CSV_FIELDS_V1) - 1
    if all(len(row) in (len(CSV_FIELDS_V1), len(CSV_FIELDS)) for row in rows):
        try:
            column = _parse_property_column([row[cell] for row in rows])
        except (CsvFormatError, ValueError):
            column = None  # read again below, slowly, to name the line
    if column is not None:
        try:
            return [_build(row, properties) for row, properties in zip(rows, column, strict=True)]
        except CsvFormatError:
            pass  # read again below, slowly, to name the line
    images = []
    for line, row in _rows_with_lines(text, source):
        try:
            images.append(image_from_row(row))
        except CsvFormatError as error:
            raise CsvFormatError(f"{source}, line {line}: {error}") from None
    return images


def write_rows(stream: TextIO, rows: Iterable[Sequence[str]]) -> None:
    """CSV rows ending in ``\n``, a cell holding a carriage return quoted too.

    The csv module quotes only the characters of its line terminator; with ``\n`` alone,
    a bare ``\r`` in a name would be written unquoted and split the row when read back.
    """
    rows = list(rows)
    # Written at C speed in one go; the rare cell with a carriage return is written again.
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    text = buffer.getvalue()
    if "\r" not in text:
        stream.write(text)
        return
    writer = csv.writer(stream, lineterminator="\n")
    quoting_all = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoting_all if any("\r" in cell for cell in row) else writer).writerow(row)


def needs_format_2(image: Image) -> bool:
    """Does ``image`` have something only a format-2 row can hold?"""
    return glance_cells(image) != list(_EMPTY_GLANCE_CELLS)


def write_csv(stream: TextIO, images: Iterable[Image], version: int | None = None) -> None:
    """A backup file: format 2 (with its header line) or the original's format 1.

    ``version`` None: the smallest format that holds everything, so a store or backup
    without Glance v2 fields stays byte for byte what the original tool wrote (and read).
    Format 1 asked for explicitly drops those fields.
    """
    images = list(images)
    if version is None:
        version = 2 if any(map(needs_format_2, images)) else 1
    if version >= 2:
        write_rows(stream, [CSV_FIELDS])
    write_rows(stream, (image.to_row(version) for image in images))
