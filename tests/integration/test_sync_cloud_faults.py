"""sync.py on the real cloud when things go wrong: dead servers, bad credentials, bad data.

Every failure must stay inside its region, be told in one line, leave no half-made image
behind, and give exit status 1 (130 for Ctrl-C); a later run must converge.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sync_cloud_support import CloudSync, facade_factory_with, md5, payload

from fiwareglancesync.facades.base import ImageData
from fiwareglancesync.facades.streams import GlanceStream

ALL_REGIONS = ("Master", "RegionA", "RegionB", "RegionC")


@pytest.fixture
def sync(faulty_cloud, tmp_path, monkeypatch) -> CloudSync:
    faulty_cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    cloud_sync = CloudSync(faulty_cloud, tmp_path)
    # The faults here strike data going through this host, which glance-download avoids.
    cloud_sync.write_config(master={"transfer": "stream"})
    return cloud_sync


def after_first_chunk(chunks: Iterator[bytes], action) -> Iterator[bytes]:
    """Yield the data, doing ``action`` once the first chunk has gone out."""
    for number, block in enumerate(chunks):
        yield block
        if number == 0:
            action()


def interrupting_uploads_to(region: str, action):
    def hook(facade, upload_region, image, data):
        if upload_region.name != region:
            return data
        return ImageData.from_stream(after_first_chunk(data.chunks(), action), image, data.source)

    return facade_factory_with(hook)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


def test_a_glance_killed_during_an_upload_fails_only_its_region(sync):
    data = payload("killed", 4 * 1024 * 1024)
    sync.add_image("Master", "kill-img", data)
    factory = interrupting_uploads_to("RegionA", lambda: sync.cloud.kill_glance("RegionA"))

    run = sync.run("RegionA", "RegionB", "other:RegionC", facade_factory=factory)
    assert run.status == 1
    (error,) = error_lines(run.out)
    assert error.startswith("ERROR:RegionA: uploading image kill-img")
    assert "INFO:Region RegionA has finished with errors" in run.lines
    assert "Traceback" not in run.out + run.err
    for region in ("RegionB", "RegionC"):
        assert sync.one(region, "kill-img")["checksum"] == md5(data)

    # The dead Glance could not delete the half-made image: it is found and removed later.
    sync.cloud.start_glance("RegionA")
    assert [status for _, _, status in sync.unfinished(["RegionA"])] in (["saving"], ["queued"])
    rerun = sync.run("RegionA", "RegionB", "other:RegionC")
    assert rerun.status == 0, rerun.out
    assert any("left saving by an earlier" in line or "left queued" in line for line in rerun.lines)
    assert sync.one("RegionA", "kill-img")["checksum"] == md5(data)
    assert sync.unfinished(ALL_REGIONS) == []


def test_ctrl_c_during_an_upload_leaves_no_image_behind(sync):
    sync.add_image("Master", "int-img", payload("interrupted", 3 * 1024 * 1024))

    def press_ctrl_c() -> None:
        raise KeyboardInterrupt

    run = sync.run("RegionA", facade_factory=interrupting_uploads_to("RegionA", press_ctrl_c))
    assert run.status == 130
    assert "Interrupted." in run.err
    assert sync.named("RegionA", "int-img") == []


def test_a_listing_that_hangs_is_cut_at_list_images_timeout(sync):
    sync.add_image("Master", "hang-img", payload("hang"))
    sync.write_config(master={"list_images_timeout": "4"})
    with sync.cloud.glance_hanging("RegionB"):
        run = sync.run("RegionA", "RegionB")
    assert run.status == 1
    assert error_lines(run.out) == [
        "ERROR:RegionB: listing the images took longer than list_images_timeout (4 s)"
    ]
    assert sync.one("RegionA", "hang-img")["status"] == "active"


def test_an_images_dir_file_with_other_content_is_refused(sync):
    good, bad = payload("genuine", 2 * 1024 * 1024), payload("corrupt", 2 * 1024 * 1024)
    master = sync.add_image("Master", "mm-img", good)
    path = sync.write_image_file(master["id"], bad)
    run = sync.run("RegionA")
    assert run.status == 1
    assert error_lines(run.out) == [
        f"ERROR:RegionA: refused to upload image mm-img: the data from {path} has checksum "
        f"{md5(bad)}, the master image has {md5(good)}"
    ]
    assert sync.named("RegionA", "mm-img") == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_keystone_is_one_line(sync):
    url = f"http://127.0.0.1:{free_port()}/v3"
    sync.write_config(
        master={
            "credential": "",
            "user": "admin",
            "password": "x",
            "keystone_url": url,
            "tenant": "admin",
        }
    )
    run = sync.run()  # every region of the master target: the catalog is needed first
    assert run.status == 1
    assert error_lines(run.out + run.err) == [
        f"ERROR:target master: its regions cannot be listed: cannot reach Keystone at {url} "
        "(connection refused)"
    ]
    assert "Traceback" not in run.out + run.err


def test_a_wrong_password_is_one_line_without_the_password(sync):
    sync.write_config(other={"password": "not-the-password"})
    run = sync.run("other:RegionC")
    assert run.status == 1
    assert error_lines(run.out) == [
        f"ERROR:other:RegionC: Keystone {sync.keystone_b.auth_url} refused the credentials of user admin on "
        "project admin (HTTP 401): wrong user name, password, project or domain"
    ]
    assert "not-the-password" not in run.out + run.err


def test_a_member_may_not_publish_and_is_told_so(sync):
    sync.add_image("Master", "pub-img", payload("publish"))
    member = sync.keystone_a.users["member1"]
    sync.write_config(
        master={
            "credential": "",
            "user": member.name,
            "password": member.password,
            "keystone_url": sync.keystone_a.auth_url,
            "tenant": member.project,
        }
    )
    run = sync.run("RegionA")
    assert run.status == 1
    assert error_lines(run.out) == [
        "ERROR:RegionA: creating image pub-img: forbidden (HTTP 403): this user may not make "
        "images public (policy publicize_image needs the admin role)"
    ]
    assert sync.named("RegionA", "pub-img") == []


def test_an_unknown_region_is_a_usage_error_in_one_line(sync):
    run = sync.run("Atlantis")
    assert run.status == 2
    assert run.out == ""
    assert run.err.splitlines() == [
        "ERROR: unknown region Atlantis (regions of target master: Master, RegionA, RegionB)"
    ]


def test_an_unreachable_glance_fails_its_region_only(sync):
    sync.add_image("Master", "down-img", payload("down"))
    sync.cloud.kill_glance("RegionB")
    run = sync.run("RegionB", "RegionA")
    assert run.status == 1
    (error,) = error_lines(run.out)
    # RegionB sits behind a proxy: a dead Glance there resets the connection instead.
    assert error in (
        "ERROR:RegionB: listing the images: cannot connect (connection refused)",
        "ERROR:RegionB: listing the images: cannot connect (connection reset)",
    )
    assert "INFO:Region RegionA has finished" in run.lines
    assert sync.one("RegionA", "down-img")["status"] == "active"


def test_a_stream_that_arrives_different_is_deleted_after_verification(sync):
    data = payload("stream-source", 2 * 1024 * 1024)
    sync.add_image("Master", "flip-img", data)

    def flip_a_byte(chunks: Iterator[bytes]) -> Iterator[bytes]:
        first = True
        for block in chunks:
            yield (bytes([block[0] ^ 1]) + block[1:]) if first else block
            first = False

    def corrupt(facade, region, image, stream):
        # Same length, other content: only the target Glance's checksum can tell.
        return GlanceStream.from_stream(flip_a_byte(stream.chunks()), image, stream.source)

    run = sync.run("RegionA", facade_factory=facade_factory_with(corrupt))
    assert run.status == 1
    (error,) = error_lines(run.out)
    assert error.startswith("ERROR:RegionA: image flip-img failed verification: its checksum is ")
    assert f"expected {md5(data)}; its sha512 hash differs from the master's" in error
    assert sync.named("RegionA", "flip-img") == []
