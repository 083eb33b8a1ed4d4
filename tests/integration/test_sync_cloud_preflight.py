"""Pre-flight checks on the real test cloud: images that cannot land are never sent.

RegionB's Glance enforces Keystone unified limits (a test sets the admin project's
``image_size_total`` with ``cloud.image_quota``); RegionA's does not accept disk_format
ploop. The master's Glance is behind a proxy that records every ``GET .../file`` with its
Range header, and RegionB's file store is a directory the tests can list: together they
show what was read from the master and what reached the target.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from sync_cloud_support import (
    MASTER_REGION,
    CloudSync,
    payload,
    qcow2_disk,
)

from tests.cloud.cloud import NARROW_FORMATS_REGION, QUOTA_REGION, REFUSED_DISK_FORMAT

MiB = 1024 * 1024
HEAD_RANGE = f"bytes=0-{MiB - 1}"  # the pre-flight data check's one read


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    return CloudSync(cloud, tmp_path)


def master_reads(sync: CloudSync, image_id: str, since: int) -> list[str | None]:
    """The Range header of every read of a master image's data since ``since``: by
    GlanceSync or by a Glance importing it (every reader goes through the proxy)."""
    downloads = sync.cloud.proxied_downloads(MASTER_REGION)[since:]
    return [download.range for download in downloads if download.image_id == image_id]


def errors(run) -> list[str]:
    return [line for line in run.lines if line.startswith("ERROR:")]


# --------------------------------------------------------------------------- quota


@pytest.mark.parametrize("transfer", ["auto", "stream"], ids=["glance-download", "stream"])
def test_an_image_over_the_quota_is_refused_before_any_byte(sync: CloudSync, transfer) -> None:
    big = sync.add_image(MASTER_REGION, "quota-big", payload("quota-big", 3 * MiB))
    small = sync.add_image(MASTER_REGION, "quota-small", payload("quota-small", MiB))
    sync.write_config(master={"transfer": transfer})
    store_before = sync.cloud.store_files(QUOTA_REGION)
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    with sync.cloud.image_quota("image_size_total", 2):  # MiB: room for small, not big
        run = sync.run(QUOTA_REGION)

    assert run.status == 1, run.out  # what a failed upload gives
    refusal, region_end = errors(run)
    # Which goes first is the plan's business: big finds 0 or 1 MiB used.
    assert refusal.startswith(
        f"ERROR:{QUOTA_REGION}: image quota-big refused before the transfer: 3 MB would "
        "exceed the region's image_size_total quota (used "
    ), refusal
    assert refusal.endswith(" of 2 MB)"), refusal
    assert region_end == f"ERROR:{QUOTA_REGION}: 1 image refused before the transfer: quota-big"
    # Nothing of big reached the region: no record, no file in its store...
    assert sync.named(QUOTA_REGION, "quota-big") == []
    copy = sync.one(QUOTA_REGION, "quota-small")
    assert (copy["status"], copy["checksum"]) == ("active", small["checksum"])
    assert sync.cloud.store_files(QUOTA_REGION) - store_before == {copy["id"]}
    # ... and nothing of it was read from the master: the quota is checked before the data.
    assert master_reads(sync, big["id"], since) == []
    # small: its first MiB read by the sync host for the data check whatever the
    # transfer, then read whole (by the region's Glance for a glance-download, by the
    # sync host else).
    assert master_reads(sync, small["id"], since) == [HEAD_RANGE, None]


def test_without_the_check_glance_lets_an_import_in_over_the_quota(sync: CloudSync) -> None:
    # The reason for the check: Glance counts an import against the quota only once the
    # data is in, so without it the whole image is copied and the region ends over quota.
    sync.add_image(MASTER_REGION, "quota-unchecked", payload("quota-unchecked", 3 * MiB))
    sync.write_config(master={"preflight": "false"})

    with sync.cloud.image_quota("image_size_total", 2):
        run = sync.run(QUOTA_REGION)
        usage = sync.client(QUOTA_REGION).http_client.get("/v2/info/usage")[1]["usage"]

    assert run.status == 0, run.out
    assert sync.one(QUOTA_REGION, "quota-unchecked")["status"] == "active"
    assert usage["image_size_total"] == {"usage": 3, "limit": 2}


def test_without_the_check_glance_refuses_a_stream_once_its_record_is_made(
    sync: CloudSync,
) -> None:
    image = sync.add_image(MASTER_REGION, "quota-413", payload("quota-413", 3 * MiB))
    sync.write_config(master={"preflight": "false", "transfer": "stream"})
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    with sync.cloud.image_quota("image_size_total", 2):
        run = sync.run(QUOTA_REGION)

    assert run.status == 1, run.out
    [error] = errors(run)
    assert error.startswith(f"ERROR:{QUOTA_REGION}: uploading image quota-413: HTTP 413"), error
    assert sync.named(QUOTA_REGION, "quota-413") == []  # the record made was deleted
    # ... but only once the whole image had been read from the master for it.
    [download] = sync.cloud.proxied_downloads(MASTER_REGION)[since:]
    assert (download.image_id, download.range) == (image["id"], None)
    assert download.sent > image["size"]  # the image, and the response's headers


def test_a_dry_run_says_which_image_would_be_refused(sync: CloudSync) -> None:
    big = sync.add_image(MASTER_REGION, "quota-dry", payload("quota-dry", 3 * MiB))
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    with sync.cloud.image_quota("image_size_total", 2):
        run = sync.run("--dry-run", QUOTA_REGION)

    assert run.status == 1, run.out
    assert (
        f"WARNING:{QUOTA_REGION}: would refuse quota-dry before the transfer: 3 MB would "
        "exceed the region's image_size_total quota (used 0 of 2 MB)"
    ) in run.lines, run.out
    assert errors(run) == [
        f"ERROR:{QUOTA_REGION}: 1 image would be refused before the transfer: quota-dry"
    ]
    assert master_reads(sync, big["id"], since) == []


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("transfer", "from_file"),
    [
        ("stream", False),  # a stream: the head is read from the master
        ("stream", True),  # a file of images_dir: its own first MiB
        ("glance-download", False),  # the region would pull it: read from the master
    ],
    ids=["stream", "file", "glance-download"],
)
def test_a_qcow2_labelled_raw_is_refused_before_the_transfer(
    sync: CloudSync, transfer: str, from_file: bool
) -> None:
    region = "RegionB"
    data = qcow2_disk("disguised", data_clusters=40)  # 2.8 MiB
    disguised = sync.add_image(MASTER_REGION, "disguised", data)  # labelled raw
    plain = sync.add_image(MASTER_REGION, "plain", payload("plain", 2 * MiB))
    assert disguised["disk_format"] == "raw"  # Glance takes it: raw may hold anything
    if from_file:
        sync.write_image_file(disguised["id"], data)
    sync.write_config(master={"transfer": transfer})
    store_before = sync.cloud.store_files(region)
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    run = sync.run(region)

    assert run.status == 1, run.out
    assert errors(run) == [
        f"ERROR:{region}: image disguised refused before the transfer: its data is qcow2, "
        "but its disk_format is raw",
        f"ERROR:{region}: 1 image refused before the transfer: disguised",
    ]
    assert sync.named(region, "disguised") == []
    copy = sync.one(region, "plain")
    assert (copy["status"], copy["checksum"]) == ("active", plain["checksum"])
    assert sync.cloud.store_files(region) - store_before == {copy["id"]}
    # One read of the first MiB at most, and none from the master for a file.
    assert master_reads(sync, disguised["id"], since) == ([] if from_file else [HEAD_RANGE])


def test_a_glance_download_reads_the_first_mib_from_the_master_once(sync: CloudSync) -> None:
    """The region's Glance checks only the size of what it pulls: the sync host checks
    the data of every import, with one ranged read of the master per image and run."""
    good = sync.add_image(MASTER_REGION, "good", payload("good", 3 * MiB))
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    run = sync.run("RegionA", "RegionB")

    assert run.status == 0, run.out
    assert run.out.count("good imported by glance-download") == 2, run.out
    # One ranged read by the sync host, then each region's Glance pulls the image whole.
    assert master_reads(sync, good["id"], since) == [HEAD_RANGE, None, None]


# --------------------------------------------------------------------------- formats


def test_a_disk_format_the_region_does_not_accept_is_refused(sync: CloudSync) -> None:
    client = sync.client(MASTER_REGION)
    created = client.images.create(
        name="odd-format",
        disk_format=REFUSED_DISK_FORMAT,
        container_format="bare",
        visibility="public",
    )
    data = payload("odd-format", MiB)
    client.images.upload(created["id"], io.BytesIO(data), image_size=len(data))
    since = len(sync.cloud.proxied_downloads(MASTER_REGION))

    run = sync.run(NARROW_FORMATS_REGION, QUOTA_REGION)

    assert run.status == 1, run.out
    assert errors(run) == [
        f"ERROR:{NARROW_FORMATS_REGION}: image odd-format refused before the transfer: the "
        f"region's Glance does not accept disk_format {REFUSED_DISK_FORMAT} (it accepts: "
        "aki, ami, ari, iso, qcow2, raw, vdi, vhd, vhdx, vmdk)",
        f"ERROR:{NARROW_FORMATS_REGION}: 1 image refused before the transfer: odd-format",
    ]
    assert sync.named(NARROW_FORMATS_REGION, "odd-format") == []
    assert sync.one(QUOTA_REGION, "odd-format")["status"] == "active"  # accepted there
    # Only RegionB's Glance read it (its glance-download); nobody for RegionA.
    assert master_reads(sync, created["id"], since) == [None]


# --------------------------------------------------------------------------- the test data


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_the_qcow2_of_these_tests_is_one_qemu_img_accepts(tmp_path: Path) -> None:
    path = tmp_path / "disk.qcow2"
    path.write_bytes(qcow2_disk("check", data_clusters=3))
    checked = subprocess.run(
        ["qemu-img", "check", "-f", "qcow2", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(path), str(raw)], check=True)
    assert raw.read_bytes() == b"".join(payload(f"check{n}", 64 * 1024) for n in range(3))
