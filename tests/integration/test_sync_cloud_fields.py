"""The Glance v2 fields on the real test cloud: carried, updated, restricted, respected.

Tags, the four visibilities, os_hidden, protected, min_disk and min_ram travel with a
copy and follow the master; ``sync_fields`` keeps some of them local; a protected
regional copy is never replaced nor unprotected; a shared image's members are mapped by
project name across the two Keystones.
"""

from __future__ import annotations

import json

import pytest
from sync_cloud_support import CloudSync, md5, payload

pytestmark = pytest.mark.cloud


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    return CloudSync(cloud, tmp_path)


def fields_of(image: dict) -> dict:
    return {
        "visibility": image["visibility"],
        "tags": sorted(image.get("tags") or []),
        "os_hidden": image.get("os_hidden"),
        "protected": image.get("protected"),
        "min_disk": image.get("min_disk"),
        "min_ram": image.get("min_ram"),
    }


def test_every_field_is_carried_and_follows_the_master(sync):
    master = sync.client("Master")
    made = sync.add_image("Master", "amphora-x", payload("amphora"), type="base")
    master.images.update(made["id"], os_hidden=True, protected=True, min_disk=1, min_ram=128)
    master.image_tags.update(made["id"], "amphora")
    master.image_tags.update(made["id"], "octavia")
    sync.write_config(
        master={"metadata_set": "type", "forcesyncs": made["id"]},
        other={"metadata_set": "type", "forcesyncs": made["id"]},
    )
    run = sync.run("RegionA", "other:RegionC")
    assert run.status == 0, run.out
    wanted = {
        "visibility": "public",
        "tags": ["amphora", "octavia"],
        "os_hidden": True,
        "protected": True,
        "min_disk": 1,
        "min_ram": 128,
    }
    for region in ("RegionA", "RegionC"):
        assert fields_of(sync.one(region, "amphora-x")) == wanted, region

    # Changed on the master: every difference is pending_metadata, and the update sets it.
    master.image_tags.delete(made["id"], "octavia")
    master.image_tags.update(made["id"], "lb")
    master.images.update(
        made["id"],
        os_hidden=False,
        protected=False,
        min_disk=3,
        min_ram=256,
        visibility="community",
    )
    assert sync.status_rows("RegionA", "other:RegionC") == [
        "pending_metadata,RegionA,amphora-x",
        "pending_metadata,other:RegionC,amphora-x",
    ]
    ids = {region: sync.one(region, "amphora-x")["id"] for region in ("RegionA", "RegionC")}
    run = sync.run("RegionA", "other:RegionC")
    assert run.status == 0, run.out
    assert "INFO:RegionA: Updating the metadata of image amphora-x" in run.lines
    for region in ("RegionA", "RegionC"):
        copy = sync.one(region, "amphora-x")
        assert copy["id"] == ids[region]  # updated, not uploaded again
        # protected stays: GlanceSync never unprotects an image.
        assert fields_of(copy) == {
            "visibility": "community",
            "tags": ["amphora", "lb"],
            "os_hidden": False,
            "protected": True,
            "min_disk": 3,
            "min_ram": 256,
        }, region
    assert sync.status_rows("RegionA", "other:RegionC") == [
        "ok,RegionA,amphora-x",
        "ok,other:RegionC,amphora-x",
    ]


def test_sync_fields_keeps_the_regions_own_tags_and_limits(sync):
    master = sync.client("Master")
    made = sync.add_image("Master", "local-tags", payload("local"))
    master.images.update(made["id"], min_ram=512)
    master.image_tags.update(made["id"], "from-master")
    copy = sync.add_image("RegionA", "local-tags", payload("local"))
    sync.client("RegionA").image_tags.update(copy["id"], "regional")
    sync.write_config(master={"sync_fields": "visibility, os_hidden, protected"})
    assert sync.status_rows("RegionA") == ["ok,RegionA,local-tags"]
    # A new copy gets no tags and no limits it does not synchronise.
    run = sync.run("RegionA", "RegionB")
    assert run.status == 0, run.out
    assert fields_of(sync.one("RegionA", "local-tags"))["tags"] == ["regional"]
    new = sync.one("RegionB", "local-tags")
    assert (new.get("tags"), new["min_ram"]) == ([], 0)
    # Tags synchronised again: both copies take the master's.
    sync.write_config(master={"sync_fields": "tags, visibility"})
    assert sync.status_rows("RegionA", "RegionB") == [
        "pending_metadata,RegionA,local-tags",
        "pending_metadata,RegionB,local-tags",
    ]
    assert sync.run("RegionA", "RegionB").status == 0
    for region in ("RegionA", "RegionB"):
        assert fields_of(sync.one(region, "local-tags"))["tags"] == ["from-master"]
        assert sync.one(region, "local-tags")["min_ram"] == 0  # still not synchronised


def test_a_protected_copy_under_replace_is_left_and_reported(sync):
    sync.add_image("Master", "guarded", payload("new"))
    old = sync.add_image("RegionA", "guarded", payload("old"))
    sync.client("RegionA").images.update(old["id"], protected=True)
    sync.write_config(master={"replace": md5(payload("old"))})

    status = sync.run("--show-status", "--format", "json", "RegionA")
    assert status.status == 0, status.err
    [entry] = [
        image
        for region in json.loads(status.out)["regions"]
        for image in region["images"]
        if image["name"] == "guarded"
    ]
    assert entry["status"] == "error_checksum"
    assert "protected in the region: replace" in entry["message"]

    run = sync.run("RegionA")
    assert run.status == 0, run.out
    warnings = [line for line in run.lines if line.startswith("WARNING:")]
    assert any(
        "guarded" in line and old["id"] in line and "protected" in line and "replace" in line
        for line in warnings
    ), run.out
    [kept] = sync.named("RegionA", "guarded")
    assert (kept["id"], kept["checksum"], kept["protected"]) == (
        old["id"],
        md5(payload("old")),
        True,
    )


def test_a_shared_image_gets_its_members_mapped_across_the_two_keystones(sync):
    a, b = sync.keystone_a, sync.keystone_b
    master = sync.client("Master")
    made = sync.add_image("Master", "shared-x", payload("shared"), public=False)
    master.images.update(made["id"], visibility="shared")
    for project in ("project2", "project3"):
        member = a.project_ids[project]
        master.image_members.create(made["id"], member)
        master.image_members.update(made["id"], member, "accepted")
    sync.write_config(
        master={"forcesyncs": made["id"], "members": "project2"},
        other={"forcesyncs": made["id"], "members": "same"},
    )
    run = sync.run("RegionA", "other:RegionC")
    assert run.status == 0, run.out
    # project3 exists only under Keystone A: a warning, not a failure.
    assert any(
        line.startswith("WARNING:") and "project3" in line and "target other" in line
        for line in run.lines
    ), run.out

    def members(region: str) -> dict[str, str]:
        copy = sync.one(region, "shared-x")
        assert copy["visibility"] == "shared"
        listed = sync.client(region).image_members.list(copy["id"])
        return {m["member_id"]: m["status"] for m in listed}

    assert members("RegionA") == {a.project_ids["project2"]: "accepted"}
    assert members("RegionC") == {b.project_ids["project2"]: "accepted"}
    # The member of Keystone B sees the copy in its image list.
    as_member = sync.cloud.glance_client(region="RegionC", user="user2")
    assert "shared-x" in [image["name"] for image in as_member.images.list()]
    assert sync.status_rows("RegionA", "other:RegionC") == [
        "ok,RegionA,shared-x",
        "ok,other:RegionC,shared-x",
    ]
