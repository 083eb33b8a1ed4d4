"""Pre-flight checks: what a region can tell, before a transfer, about an image that
cannot land in it.

Each check is a pure function over what a facade answered (the region's quota usage,
the formats its image schema lists, the first MiB of the image's data) and returns None
when the image may go, else the reason it cannot, worded to follow "image X refused
before the transfer: ". A region that cannot tell (an older Glance, the mock) answers
None, and that check passes: only what a region says refuses an image.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from fiwareglancesync.image import Image

MiB = 1024 * 1024
HEAD_SIZE = MiB  # the bytes of an image read to tell its format

# Glance's quota resources (Keystone unified limits), as /v2/info/usage names them.
IMAGE_SIZE_TOTAL = "image_size_total"  # MiB of image data the project may store
IMAGE_COUNT_TOTAL = "image_count_total"  # images the project may have

# Formats a raw disk may legitimately look like: a partition table (the inspector calls
# any MBR "gpt") or a hybrid ISO written as a disk. Any other format found under the
# label "raw" is an image a hypervisor would read as something else.
RAW_LOOKALIKES = frozenset({"gpt", "iso"})


@dataclass(frozen=True)
class AcceptedFormats:
    """The formats a region's Glance accepts; None where its schema does not say."""

    disk_formats: frozenset[str] | None = None
    container_formats: frozenset[str] | None = None


# --------------------------------------------------------------------------- quota


def _usage(usage: Mapping[str, Any], resource: str) -> tuple[int, int] | None:
    """(used, limit) of ``resource``, or None when not given, unlimited (-1) or malformed."""
    entry = usage.get(resource)
    if not isinstance(entry, Mapping):
        return None
    used, limit = entry.get("usage"), entry.get("limit")
    if not isinstance(used, int) or not isinstance(limit, int) or limit < 0:
        return None
    return used, limit


@dataclass(frozen=True)
class Planned:
    """What a dry run would already have sent to the region before this image: the
    region's usage does not show it, since nothing was sent."""

    images: int = 0
    bytes: int = 0


NOTHING_PLANNED = Planned()  # a real run: the usage shows what was sent


def quota_refusal(
    image: Image, usage: Mapping[str, Any] | None, planned: Planned = NOTHING_PLANNED
) -> str | None:
    """Why ``image`` exceeds the region's quota, from ``GET /v2/info/usage``'s "usage".

    Mirrors Glance's own enforcement (glance/quota/keystone.py, through oslo.limit): a
    new record is refused when the project already has ``image_count_total`` images;
    data is refused when usage plus the image's whole MiB exceed ``image_size_total``
    (both counted in MiB rounded down, as Glance does). A Glance without unified limits
    answers an empty usage: nothing to refuse. ``planned`` is added to the usage.
    """
    if not usage:
        return None
    count = _usage(usage, IMAGE_COUNT_TOTAL)
    if count is not None and count[0] + planned.images + 1 > count[1]:
        used = count[0] + planned.images
        return (
            f"one more image would exceed the region's {IMAGE_COUNT_TOTAL} quota "
            f"({used} of {count[1]} images)"
        )
    total = _usage(usage, IMAGE_SIZE_TOTAL)
    needed = image.size // MiB
    if total is not None and total[0] + planned.bytes // MiB + needed > total[1]:
        used = total[0] + planned.bytes // MiB
        return (
            f"{needed} MB would exceed the region's {IMAGE_SIZE_TOTAL} quota "
            f"(used {used} of {total[1]} MB)"
        )
    return None


# --------------------------------------------------------------------------- formats


def formats_from_schema(schema: Any) -> AcceptedFormats:
    """The formats ``GET /v2/schemas/image`` lists (Glance's disk_formats and
    container_formats options); None for a property without an enum."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None

    def enum(name: str) -> frozenset[str] | None:
        field = properties.get(name) if isinstance(properties, Mapping) else None
        values = field.get("enum") if isinstance(field, Mapping) else None
        if not isinstance(values, list):
            return None
        return frozenset(value for value in values if isinstance(value, str))

    return AcceptedFormats(enum("disk_format"), enum("container_format"))


def format_refusal(image: Image, accepted: AcceptedFormats | None) -> str | None:
    """Why the region's Glance would refuse ``image``'s disk or container format."""
    if accepted is None:
        return None
    wanted = (
        ("disk_format", image.disk_format, accepted.disk_formats),
        ("container_format", image.container_format, accepted.container_formats),
    )
    for field, value, allowed in wanted:
        if value and allowed is not None and value not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            return f"the region's Glance does not accept {field} {value} (it accepts: {listed})"
    return None


# --------------------------------------------------------------------------- data


def _format_inspector() -> ModuleType:
    """oslo.utils' inspector, imported when first needed: a status run never needs it,
    and its import is a tenth of a second of every run's start."""
    return importlib.import_module("oslo_utils.imageutils.format_inspector")


def inspectable(image: Image) -> bool:
    """Is the data of ``image`` worth reading to check it against its disk_format?

    Like Glance, only ``bare`` images are inspected (a container's content is not a
    disk); and a disk_format the inspector does not know (``ami``, ``aki``, ``ari``,
    ``ploop``, ...) is not checked at all: a kernel's boot sector, for one, looks like a
    partition table to the inspector.
    """
    return (
        image.container_format == "bare"
        and image.disk_format is not None
        and image.disk_format in _format_inspector().ALL_FORMATS
    )


def detected_formats(head: bytes) -> list[str]:
    """The formats oslo.utils' inspector (Glance's own) recognises in ``head``.

    ``head`` is taken for the whole image: every inspector decides whether its format
    matches from the first bytes (the farthest, ISO's, at 32 KiB), and only the safety
    checks, left to Glance, need the rest. ``["raw"]`` when nothing specific matches.
    """
    wrapper = _format_inspector().InspectWrapper(iter([head]))
    for _ in wrapper:  # feeds the inspectors; the end of the iterator finishes them
        pass
    return sorted(str(inspector) for inspector in wrapper.formats or [])


def data_refusal(image: Image, head: bytes) -> str | None:
    """Why the first MiB of ``image``'s data says it is not its ``disk_format``.

    Mirrors Glance's upload check (glance/location.py ``set_data``, with the default
    ``[image_format] require_image_format_match = true``): several formats at once (but
    ISO over GPT, a bootable ISO) is refused, a format other than the label is refused,
    unrecognised data under a label the inspector does not know passes. One rule is
    stricter than Glance: Glance lets any data in under ``raw`` (with a warning), but a
    qcow2 or other image file labelled raw is how the 2024 qcow2 data-file exploits got
    past it, and compute services that inspect images (Nova since those fixes) refuse to
    boot it; only the lookalikes of a raw disk (:data:`RAW_LOOKALIKES`) pass.
    """
    if not inspectable(image):
        return None
    return formats_refusal(image, detected_formats(head))


def formats_refusal(image: Image, found: list[str]) -> str | None:
    """:func:`data_refusal` from what :func:`detected_formats` found in the head."""
    if not inspectable(image):
        return None
    if found == ["gpt", "iso"]:
        found = ["iso"]
    if len(found) > 1:
        return f"its data looks like several formats at once ({', '.join(found)})"
    data_format, label = found[0], image.disk_format
    if data_format == label or (label == "raw" and data_format in RAW_LOOKALIKES):
        return None
    if data_format == "raw":
        return f"its data has no format the inspector knows, but its disk_format is {label}"
    return f"its data is {data_format}, but its disk_format is {label}"
