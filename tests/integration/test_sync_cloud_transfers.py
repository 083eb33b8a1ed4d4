"""Transfer methods on the real test cloud: glance-download, streams, and their fallbacks.

RegionA and RegionB share the master's Keystone and their Glances offer glance-download;
RegionC (target ``other``) has its own Keystone, so it can only be sent the data. The
master's Glance is behind a proxy that can break its downloads half-way, and its request
log says who downloaded what: GlanceSync goes through glanceclient, a Glance importing
from it through urllib.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sync_cloud_support import MASTER_REGION, CloudSync, deleting_the_source_first, md5, payload

from fiwareglancesync.facades import streams
from fiwareglancesync.facades.glance import GlanceFacade

MiB = 1024 * 1024


@pytest.fixture
def sync(faulty_cloud, tmp_path, monkeypatch) -> CloudSync:
    faulty_cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(streams, "RESUME_PAUSE", 0.05)  # resumes without the long pauses
    return CloudSync(faulty_cloud, tmp_path)


def sync_host_downloads(sync: CloudSync, image_ids: set[str], status: int = 200) -> list[str]:
    """The master images of ``image_ids`` that GlanceSync itself downloaded whole (200),
    or of which it read the first MiB for the pre-flight data check (206)."""
    return [
        logged.image_id
        for logged in sync.cloud.file_downloads(MASTER_REGION)
        if logged.image_id in image_ids and logged.by_sync_host and logged.status == status
    ]


def metric(path: Path, name: str, region: str) -> float:
    for line in path.read_text().splitlines():
        if line.startswith(f'{name}{{region="{region}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {region} not in {path}")


def add_ami_family(sync: CloudSync, prefix: str) -> dict[str, dict]:
    kernel = sync.add_image(MASTER_REGION, f"{prefix}-kernel", payload(f"{prefix}k", 2 * MiB))
    ramdisk = sync.add_image(MASTER_REGION, f"{prefix}-ramdisk", payload(f"{prefix}r", MiB))
    ami = sync.add_image(
        MASTER_REGION,
        f"{prefix}-ami",
        payload(f"{prefix}a", 3 * MiB),
        type="ami",
        hw_disk_bus="scsi",
        os_distro="fedora",
        kernel_id=kernel["id"],
        ramdisk_id=ramdisk["id"],
    )
    return {"kernel": kernel, "ramdisk": ramdisk, "ami": ami}


def test_auto_moves_no_image_byte_through_this_host(sync: CloudSync, tmp_path: Path) -> None:
    family = add_ami_family(sync, "gd")
    metrics = tmp_path / "glancesync.prom"

    run = sync.run("--metrics-file", str(metrics), "RegionA", "RegionB")

    assert run.status == 0, run.out + run.err
    masters = {image["id"] for image in family.values()}
    assert sync_host_downloads(sync, masters) == []
    # Only the data check's first MiB of each image, once for both regions.
    assert sorted(sync_host_downloads(sync, masters, status=206)) == sorted(masters)
    # ... yet both Glances read every image from the master themselves.
    pulled = [
        logged.image_id
        for logged in sync.cloud.file_downloads(MASTER_REGION)
        if logged.image_id in masters and not logged.by_sync_host
    ]
    assert sorted(pulled) == sorted(list(masters) * 2)
    for region in ("RegionA", "RegionB"):
        for name, master in family.items():
            assert f"INFO:{region}: gd-{name} imported by glance-download from Master" in " ".join(
                run.lines
            ), run.out
            copy = sync.one(region, master["name"])
            assert copy["status"] == "active"
            assert copy["checksum"] == master["checksum"]
            assert copy["os_hash_value"] == master["os_hash_value"]
        assert metric(metrics, "glancesync_uploaded_bytes", region) == 6 * MiB
    # Through this host: the first MiB of each image, read once, for the region that
    # checked it first.
    streamed = [metric(metrics, "glancesync_streamed_bytes", r) for r in ("RegionA", "RegionB")]
    assert streamed == [3 * MiB, 0]


def test_after_a_glance_download_the_metadata_is_exactly_the_masters(sync: CloudSync) -> None:
    family = add_ami_family(sync, "meta")

    assert sync.run("RegionA").status == 0

    kernel, ramdisk = sync.one("RegionA", "meta-kernel"), sync.one("RegionA", "meta-ramdisk")
    ami = sync.one("RegionA", "meta-ami")
    master = family["ami"]
    assert (ami["kernel_id"], ami["ramdisk_id"]) == (kernel["id"], ramdisk["id"])
    assert (ami["type"], ami["hw_disk_bus"], ami["os_distro"]) == ("ami", "scsi", "fedora")
    assert ami["visibility"] == "public"
    for field in ("disk_format", "container_format", "min_disk", "min_ram", "size"):
        assert ami[field] == master[field]
    # A second run finds nothing to do: the copy is what the plan wanted.
    again = sync.run("RegionA")
    assert "INFO:RegionA: Region is synchronized." in again.lines, again.out


def test_a_glance_download_keeps_only_the_properties_of_metadata_set(sync: CloudSync) -> None:
    # Glance's own import copies hw_* and os_distro from the source; GlanceSync puts back
    # exactly what a streamed copy would have had.
    add_ami_family(sync, "only")
    sync.write_config(master={"metadata_set": "type", "metadata_condition": "True"})

    run = sync.run("RegionA")
    assert run.status == 0, run.out

    ami = sync.one("RegionA", "only-ami")
    assert ami["type"] == "ami"
    assert "hw_disk_bus" not in ami and "os_distro" not in ami
    assert ami["kernel_id"] == sync.one("RegionA", "only-kernel")["id"]


def test_a_target_forced_to_stream_sends_the_data_itself(sync: CloudSync) -> None:
    image = sync.add_image(MASTER_REGION, "forced-stream", payload("fs", 2 * MiB))
    sync.write_config(master={"transfer": "stream"})

    run = sync.run("RegionA")

    assert run.status == 0, run.out
    assert "imported by glance-download" not in run.out
    assert sync_host_downloads(sync, {image["id"]}) == [image["id"]]
    assert sync_host_downloads(sync, {image["id"]}, status=206) == [image["id"]]  # pre-flight
    assert sync.one("RegionA", "forced-stream")["checksum"] == image["checksum"]


def test_a_region_of_another_keystone_is_sent_the_data(sync: CloudSync) -> None:
    image = sync.add_image(MASTER_REGION, "elsewhere", payload("else", 2 * MiB))

    run = sync.run("--dry-run", "RegionA", "other:RegionC")
    assert "INFO:RegionA: would upload elsewhere (2 MB) by glance-download" in run.lines
    assert "INFO:other:RegionC: would upload elsewhere (2 MB) by stream" in run.lines

    run = sync.run("RegionA", "other:RegionC")

    assert run.status == 0, run.out
    assert sync_host_downloads(sync, {image["id"]}) == [image["id"]]  # for RegionC only
    # The first MiB, for the pre-flight check of each run (the dry one too), not each region.
    assert sync_host_downloads(sync, {image["id"]}, status=206) == [image["id"]] * 2
    for region in ("RegionA", "RegionC"):
        assert sync.one(region, "elsewhere")["checksum"] == image["checksum"]


def test_glance_download_forced_where_it_cannot_work_fails_that_region(sync: CloudSync) -> None:
    sync.add_image(MASTER_REGION, "insisted", payload("insist"))
    sync.write_config(other={"transfer": "glance-download"})

    run = sync.run("RegionA", "other:RegionC")

    assert run.status == 1
    assert sync.one("RegionA", "insisted")["status"] == "active"
    assert sync.named("RegionC", "insisted") == []
    [error] = [line for line in run.lines if line.startswith("ERROR:")]
    assert "other.transfer is glance-download" in error
    assert "not in the master's Keystone" in error


def test_an_import_that_fails_falls_back_to_sending_the_data(sync: CloudSync) -> None:
    data = payload("vanish", 2 * MiB)
    image = sync.add_image(MASTER_REGION, "vanishing", data)
    sync.write_image_file(image["id"], data)  # what the fallback can still send
    sync.write_config(master={"import_timeout": "8"})

    run = sync.run("RegionA", facade_factory=deleting_the_source_first(sync.cloud))

    assert run.status == 0, run.out
    [warning] = [line for line in run.lines if line.startswith("WARNING:RegionA: the glance")]
    assert "glance-download of vanishing failed" in warning
    assert "streaming it through this host instead" in warning
    copy = sync.one("RegionA", "vanishing")  # one image: no queued record left over
    assert (copy["status"], copy["checksum"]) == ("active", md5(data))


def master_hanging_during_imports(cloud):
    """A facade whose imports start once the master's Glance has stopped answering: the
    region's Glance waits for it, and only import_timeout ends the wait."""

    class MasterHangs(GlanceFacade):
        def import_image(self, region, image, source, fallback):  # type: ignore[no-untyped-def]
            cloud.hang_glance(MASTER_REGION)
            return super().import_image(region, image, source, fallback)

    return lambda environ: MasterHangs


def test_an_import_that_never_ends_is_abandoned_for_a_stream(sync: CloudSync) -> None:
    data = payload("ghost", MiB)
    image = sync.add_image(MASTER_REGION, "ghostly", data)
    sync.write_image_file(image["id"], data)  # the master cannot be read any more
    sync.write_config(master={"import_timeout": "3"})

    run = sync.run("RegionA", facade_factory=master_hanging_during_imports(sync.cloud))

    assert run.status == 0, run.out
    [warning] = [line for line in run.lines if line.startswith("WARNING:RegionA: the glance")]
    assert "not finished after import_timeout (3 s)" in warning
    assert warning.endswith("into a new record")
    copy = sync.one("RegionA", "ghostly")  # the abandoned record was deleted
    assert (copy["status"], copy["checksum"]) == ("active", md5(data))


def test_a_stream_cut_once_resumes_where_it_broke(sync: CloudSync) -> None:
    data = payload("cut-once", 6 * MiB)
    image = sync.add_image(MASTER_REGION, "cut-once", data)
    # No pre-flight read of the first MiB: the cut would be that download's.
    sync.write_config(master={"transfer": "stream", "preflight": "false"})
    before = len(sync.cloud.proxied_downloads(MASTER_REGION))
    sync.cloud.cut_downloads(MASTER_REGION, after=2 * MiB + 12345, times=1)

    run = sync.run("RegionA")

    assert run.status == 0, run.out
    downloads = sync.cloud.proxied_downloads(MASTER_REGION)[before:]
    assert [d.image_id for d in downloads] == [image["id"]] * 2
    first, second = downloads
    assert first.range is None and first.cut_after is not None
    offset = int(second.range.removeprefix("bytes=").rstrip("-"))
    # Resumed from what had arrived: not from zero, and no later than the cut.
    assert 0 < offset <= 2 * MiB + 12345
    assert any("resuming from there (1 of 5)" in line for line in run.lines), run.out
    copy = sync.one("RegionA", "cut-once")
    assert copy["checksum"] == md5(data)
    assert copy["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_a_stream_cut_every_time_fails_cleanly(sync: CloudSync) -> None:
    image = sync.add_image(MASTER_REGION, "cut-always", payload("cut-always", 8 * MiB))
    sync.write_config(master={"transfer": "stream", "preflight": "false"})  # see cut-once
    before = len(sync.cloud.proxied_downloads(MASTER_REGION))
    sync.cloud.cut_downloads(MASTER_REGION, after=MiB, times=None)

    run = sync.run("RegionA")

    assert run.status == 1
    downloads = sync.cloud.proxied_downloads(MASTER_REGION)[before:]
    assert len(downloads) == 1 + streams.RESUME_ATTEMPTS
    assert all(d.image_id == image["id"] for d in downloads)
    [error] = [line for line in run.lines if line.startswith("ERROR:")]
    assert "resumed downloads later" in error
    assert sync.named("RegionA", "cut-always") == []  # nothing left queued
