"""The pre-flight checks as pure functions: quota usage, schema formats, and data heads
read by oslo.utils' format inspector (the one Glance uses)."""

from __future__ import annotations

import struct

import pytest
from builders import image

from fiwareglancesync.preflight import (
    AcceptedFormats,
    Planned,
    data_refusal,
    detected_formats,
    format_refusal,
    formats_from_schema,
    inspectable,
    quota_refusal,
)

MiB = 1024 * 1024


def qcow2_image(virtual_size: int = 64 * MiB, length: int = 256 * 1024) -> bytes:
    """The start of a qcow2 (version 3) file as qemu-img writes it: the 104-byte header
    (magic, version, no backing file, 64 KiB clusters, the virtual size, one L1 entry,
    refcount table at the second cluster, no snapshots, no feature bits, refcount order 4,
    header length), then zeros where the tables would be."""
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb",
        3,
        0,
        0,
        16,
        virtual_size,
        0,
        1,
        3 * 65536,
        65536,
        1,
        0,
        0,
        0,
        0,
        0,
        4,
        104,
    )
    return header + bytes(length - len(header))


def raw_disk(length: int = MiB) -> bytes:
    """Bytes with no format: what a raw image of a blank disk starts with."""
    return bytes(range(256)) * (length // 256)


def with_mbr(data: bytes) -> bytes:
    """``data`` with an MBR boot signature: how a partitioned raw disk starts."""
    return data[:510] + b"\x55\xaa" + data[512:]


def vhd_image(length: int = 64 * 1024) -> bytes:
    return b"conectix" + bytes(length - 8)


def labelled(disk_format: str, container_format: str = "bare", size: int = MiB):
    return image("img", disk_format=disk_format, container_format=container_format, size=size)


# --------------------------------------------------------------------------- quota


def usage(size_used=0, size_limit=-1, count_used=0, count_limit=-1) -> dict:
    """What GET /v2/info/usage says under "usage" (Glance with unified limits)."""
    return {
        "image_size_total": {"limit": size_limit, "usage": size_used},
        "image_stage_total": {"limit": -1, "usage": 0},
        "image_count_total": {"limit": count_limit, "usage": count_used},
        "image_count_uploading": {"limit": -1, "usage": 0},
    }


@pytest.mark.parametrize(
    "answer",
    [None, {}, usage(), usage(size_used=10**6, count_used=10**6)],
    ids=["cannot tell", "no unified limits", "unlimited", "unlimited and much used"],
)
def test_nothing_is_refused_where_the_region_sets_no_limit(answer):
    assert quota_refusal(labelled("raw", size=10**12), answer) is None


def test_an_image_bigger_than_what_is_left_is_refused_in_mb():
    reason = quota_refusal(labelled("raw", size=6 * MiB), usage(size_used=3, size_limit=8))
    assert reason == ("6 MB would exceed the region's image_size_total quota (used 3 of 8 MB)")


@pytest.mark.parametrize(
    ("size", "used", "limit", "refused"),
    [
        (5 * MiB, 3, 8, False),  # exactly up to the limit: Glance accepts it
        (5 * MiB + MiB // 2, 3, 8, False),  # Glance counts whole MiB, rounded down
        (6 * MiB, 3, 8, True),
        (MiB - 1, 8, 8, False),  # less than a MiB counts for nothing, as in Glance
        (MiB, 8, 8, True),
        (0, 9, 8, True),  # already over the limit: Glance refuses any more data
    ],
)
def test_the_size_rule_is_glances(size, used, limit, refused):
    reason = quota_refusal(labelled("raw", size=size), usage(size_used=used, size_limit=limit))
    assert (reason is not None) is refused


def test_what_a_dry_run_would_have_sent_counts_as_used():
    free = usage(size_used=3, size_limit=8, count_used=1, count_limit=3)
    image = labelled("raw", size=2 * MiB)
    assert quota_refusal(image, free, Planned(images=1, bytes=3 * MiB)) is None
    assert quota_refusal(image, free, Planned(images=1, bytes=4 * MiB)) == (
        "2 MB would exceed the region's image_size_total quota (used 7 of 8 MB)"
    )
    assert quota_refusal(image, free, Planned(images=2)) == (
        "one more image would exceed the region's image_count_total quota (3 of 3 images)"
    )


def test_a_full_image_count_refuses_any_new_image():
    assert quota_refusal(labelled("raw"), usage(count_used=4, count_limit=5)) is None
    reason = quota_refusal(labelled("raw"), usage(count_used=5, count_limit=5))
    assert reason == (
        "one more image would exceed the region's image_count_total quota (5 of 5 images)"
    )


@pytest.mark.parametrize(
    "entry",
    ["lots", None, {"limit": "5", "usage": 9}, {"usage": 9}, {"limit": 5, "usage": None}],
)
def test_an_entry_that_cannot_be_read_refuses_nothing(entry):
    assert quota_refusal(labelled("raw", size=10**9), {"image_size_total": entry}) is None


# --------------------------------------------------------------------------- formats


def schema(disk_formats, container_formats) -> dict:
    """The interesting part of GET /v2/schemas/image: Glance puts None first in its enums."""
    return {
        "name": "image",
        "properties": {
            "disk_format": {"type": ["null", "string"], "enum": [None, *disk_formats]},
            "container_format": {"type": ["null", "string"], "enum": [None, *container_formats]},
            "name": {"type": ["null", "string"]},
        },
    }


def test_the_accepted_formats_are_the_enums_of_the_image_schema():
    accepted = formats_from_schema(schema(["raw", "qcow2"], ["bare", "ovf"]))
    assert accepted == AcceptedFormats(frozenset({"raw", "qcow2"}), frozenset({"bare", "ovf"}))


@pytest.mark.parametrize(
    "answer", [None, [], {}, {"properties": []}, {"properties": {"disk_format": {}}}]
)
def test_a_schema_without_enums_says_nothing(answer):
    assert formats_from_schema(answer) == AcceptedFormats(None, None)


def test_a_format_the_region_does_not_list_is_refused():
    accepted = formats_from_schema(schema(["raw", "qcow2"], ["bare"]))
    assert format_refusal(labelled("qcow2"), accepted) is None
    assert format_refusal(labelled("ploop"), accepted) == (
        "the region's Glance does not accept disk_format ploop (it accepts: qcow2, raw)"
    )
    assert format_refusal(labelled("raw", "ova"), accepted) == (
        "the region's Glance does not accept container_format ova (it accepts: bare)"
    )


def test_formats_pass_where_the_region_cannot_tell():
    assert format_refusal(labelled("ploop"), None) is None
    assert format_refusal(labelled("ploop"), AcceptedFormats(None, frozenset({"bare"}))) is None
    assert format_refusal(image("img"), formats_from_schema(schema(["raw"], ["bare"]))) is None


# --------------------------------------------------------------------------- data


def test_the_inspector_recognises_a_real_qcow2_header_and_raw_data():
    assert detected_formats(qcow2_image()) == ["qcow2"]
    assert detected_formats(raw_disk()) == ["raw"]
    assert detected_formats(b"") == ["raw"]
    assert detected_formats(with_mbr(raw_disk())) == ["gpt"]  # its name for any MBR


def test_qcow2_data_labelled_raw_is_refused():
    assert data_refusal(labelled("raw"), qcow2_image()) == (
        "its data is qcow2, but its disk_format is raw"
    )


def test_data_that_matches_its_label_passes():
    assert data_refusal(labelled("raw"), raw_disk()) is None
    assert data_refusal(labelled("qcow2"), qcow2_image()) is None
    assert data_refusal(labelled("vhd"), vhd_image()) is None


def test_a_partitioned_raw_disk_is_raw():
    assert data_refusal(labelled("raw"), with_mbr(raw_disk())) is None


@pytest.mark.parametrize(
    ("disk_format", "head", "reason"),
    [
        ("qcow2", raw_disk(), "its data has no format the inspector knows, but its disk_format "),
        ("vhdx", vhd_image(), "its data is vhd, but its disk_format is vhdx"),
        ("raw", vhd_image(), "its data is vhd, but its disk_format is raw"),
        ("qcow2", with_mbr(qcow2_image()), "its data looks like several formats at once"),
    ],
)
def test_data_that_is_another_format_is_refused(disk_format, head, reason):
    refusal = data_refusal(labelled(disk_format), head)
    assert refusal is not None and refusal.startswith(reason)


@pytest.mark.parametrize("disk_format", ["ami", "aki", "ari", "ploop"])
def test_formats_the_inspector_does_not_know_are_not_checked(disk_format):
    assert not inspectable(labelled(disk_format))
    assert data_refusal(labelled(disk_format), qcow2_image()) is None
    assert data_refusal(labelled(disk_format), raw_disk()) is None


def test_only_bare_images_are_inspected_as_glance_does():
    assert inspectable(labelled("raw"))
    assert not inspectable(labelled("raw", "ovf"))
    assert data_refusal(labelled("raw", "ovf"), qcow2_image()) is None
    assert not inspectable(image("img"))  # no disk_format: nothing to compare with


def test_the_first_mib_of_a_big_image_is_enough():
    big = labelled("raw", size=8 * 1024 * MiB)
    assert data_refusal(big, qcow2_image(length=MiB)) is not None
    assert data_refusal(big, raw_disk(MiB)) is None
