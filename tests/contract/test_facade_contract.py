"""What every facade promises the engine, checked on the mock and on real Glance alike.

The mock stands in for Glance in the scenario tests; if it drifted from what a real cloud
does, those tests would prove nothing. Each test here runs once per world (see conftest).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import ImageData
from fiwareglancesync.image import Image, same_owner
from fiwareglancesync.region import RegionRef

KiB = 1024


MASTER_REGION = RegionRef("master", "Master")
REGION_A = RegionRef("master", "RegionA")
REGION_B = RegionRef("master", "RegionB")
REGION_C = RegionRef("other", "RegionC")
ATLANTIS = RegionRef("master", "Atlantis")


def new_image(world, tmp_path: Path, base: str, *, public: bool = True, **properties: str):
    """A master-like image of random raw bytes, and the data to upload it from."""
    payload = os.urandom(64 * KiB + len(base))
    path = tmp_path / f"{base}.raw"
    path.write_bytes(payload)
    image = Image(
        name=world.name(base),
        id="",
        size=len(payload),
        checksum=hashlib.md5(payload, usedforsecurity=False).hexdigest(),
        visibility="public" if public else "private",
        disk_format="raw",
        container_format="bare",
        user_properties=dict(properties),
    )
    return image, ImageData.from_file(str(path), image)


def upload(world, tmp_path, region, base, facade=None, **kwargs) -> Image:
    image, data = new_image(world, tmp_path, base, **kwargs)
    return (facade or world.master).upload(region, image, data)


def listed(facade, region: RegionRef, image_id: str) -> Image | None:
    return next((i for i in facade.list_images(region) if i.id == image_id), None)


def test_regions_come_sorted_and_belong_to_their_target(world):
    assert world.master.regions() == ["Master", "RegionA", "RegionB"]
    assert world.other.regions() == ["RegionC"]


def test_the_project_id_is_stable_and_owns_what_is_uploaded(world, tmp_path):
    project_id = world.master.project_id()
    assert project_id and project_id == world.master.project_id()
    created = upload(world, tmp_path, REGION_A, "owned")
    assert same_owner(created.owner, project_id)


def test_an_upload_is_listed_active_with_the_master_checksum(world, tmp_path):
    image, data = new_image(world, tmp_path, "base", type="baseimages", nid="42")
    created = world.master.upload(REGION_A, image, data)
    assert created.id and created.status == "active"
    for found in (created, listed(world.master, REGION_A, created.id)):
        assert found is not None
        assert (found.name, found.checksum, found.size) == (image.name, image.checksum, image.size)
        assert found.is_public
        assert found.user_properties == {"type": "baseimages", "nid": "42"}


def named(facade, region: RegionRef, name: str) -> list[Image]:
    return [i for i in facade.list_images(region) if i.name == name]


def test_an_upload_whose_bytes_are_not_the_images_is_refused_and_leaves_nothing(world, tmp_path):
    image, _ = new_image(world, tmp_path, "tampered")
    wrong = image.copy(checksum=hashlib.md5(b"other bytes", usedforsecurity=False).hexdigest())
    data = ImageData.from_file(str(tmp_path / "tampered.raw"), wrong)
    with pytest.raises(FacadeError, match="checksum"):
        world.master.upload(REGION_A, wrong, data)
    assert named(world.master, REGION_A, image.name) == []


@pytest.mark.parametrize("extra", [-1, 1], ids=["short", "long"])
def test_an_upload_whose_length_is_not_the_images_is_refused(world, tmp_path, extra):
    # The bytes have the checksum the image says; only their length is wrong.
    payload = os.urandom(64 * KiB)
    sent = payload if extra < 0 else payload + b"x"
    image = Image(
        name=world.name(f"length{extra:+d}"),
        id="",
        size=len(payload) + 1 if extra < 0 else len(payload),
        checksum=hashlib.md5(sent, usedforsecurity=False).hexdigest(),
        disk_format="raw",
        container_format="bare",
    )
    data = ImageData.from_stream(iter([sent]), image, "a test stream")
    with pytest.raises(FacadeError):
        world.master.upload(REGION_B, image, data)
    assert named(world.master, REGION_B, image.name) == []


def test_a_private_upload_stays_private(world, tmp_path):
    created = upload(world, tmp_path, REGION_B, "private", public=False)
    assert not listed(world.master, REGION_B, created.id).is_public


def test_an_update_renames_and_sets_exactly_the_given_properties(world, tmp_path):
    created = upload(world, tmp_path, REGION_A, "meta", keep="1", change="old", drop="x")
    wanted = created.copy(
        name=world.name("meta.old"),
        is_public=False,
        user_properties={"keep": "1", "change": "new", "added": "yes"},
    )
    world.master.update(REGION_A, wanted)
    found = listed(world.master, REGION_A, created.id)
    assert found.name == world.name("meta.old")
    assert not found.is_public
    assert found.user_properties == {"keep": "1", "change": "new", "added": "yes"}
    assert found.checksum == created.checksum


def test_kernel_and_ramdisk_ids_are_user_properties(world, tmp_path):
    kernel = upload(world, tmp_path, REGION_A, "kernel", public=False)
    ramdisk = upload(world, tmp_path, REGION_A, "ramdisk", public=False)
    image, data = new_image(
        world, tmp_path, "ami", kernel_id=kernel.id, ramdisk_id=ramdisk.id, type="ami"
    )
    created = world.master.upload(REGION_A, image, data)
    expected = {"kernel_id": kernel.id, "ramdisk_id": ramdisk.id, "type": "ami"}
    assert listed(world.master, REGION_A, created.id).user_properties == expected
    # Removing them is an update like any other.
    world.master.update(REGION_A, created.copy(user_properties={"type": "ami"}))
    assert listed(world.master, REGION_A, created.id).user_properties == {"type": "ami"}


def test_delete_says_whether_there_was_an_image(world, tmp_path):
    created = upload(world, tmp_path, REGION_B, "doomed")
    assert world.master.delete(REGION_B, created.id) is True
    assert listed(world.master, REGION_B, created.id) is None
    assert world.master.delete(REGION_B, created.id) is False
    assert world.master.delete(REGION_B, str(uuid.uuid4())) is False


def test_updating_a_missing_image_is_a_facade_error(world):
    missing = Image(name=world.name("ghost"), id=str(uuid.uuid4()))
    with pytest.raises(FacadeError):
        world.master.update(REGION_A, missing)


def test_an_unknown_region_is_a_facade_error(world, tmp_path):
    with pytest.raises(FacadeError, match="Atlantis"):
        world.master.list_images(ATLANTIS)
    image, data = new_image(world, tmp_path, "lost")
    with pytest.raises(FacadeError, match="Atlantis"):
        world.master.upload(ATLANTIS, image, data)


def test_every_image_the_listing_returns_is_listed_with_its_owner(world):
    # An admin token lists other projects' private images too; the planner's owner
    # rules, not the facade, decide what counts (and a backup keeps every row).
    public_id = world.add_foreign("RegionA", world.name("theirs-public"), True)
    private_id = world.add_foreign("RegionA", world.name("theirs-private"), False)
    ids = {image.id: image for image in world.master.list_images(REGION_A)}
    assert public_id in ids and private_id in ids
    assert ids[private_id].is_public is False
    for image_id in (public_id, private_id):
        owner = ids[image_id].owner
        assert owner and not same_owner(owner, world.master.project_id())


def test_hidden_images_are_listed(world, tmp_path):
    created = upload(world, tmp_path, REGION_B, "hidden")
    world.hide("RegionB", created.id)
    found = listed(world.master, REGION_B, created.id)
    assert found is not None and found.status == "active"


def test_a_hidden_image_is_listed_as_hidden(world, tmp_path):
    created = upload(world, tmp_path, REGION_B, "hidden-flag")
    assert not listed(world.master, REGION_B, created.id).hidden
    world.hide("RegionB", created.id)
    found = listed(world.master, REGION_B, created.id)
    assert found is not None and found.hidden is True


def test_an_upload_creates_the_glance_fields_it_is_given(world, tmp_path):
    # The engine decides what a copy carries (sync_fields); the facade sets all of it.
    image, data = new_image(world, tmp_path, "fields")
    wanted = image.copy(
        hidden=True,
        tags=("amphora", "x-tag"),
        visibility="community",
        visibility_known=True,
        min_disk=2,
        min_ram=64,
        protected=True,
    )
    created = world.master.upload(REGION_A, wanted, data)
    found = listed(world.master, REGION_A, created.id)
    for image_seen in (created, found):
        assert image_seen.hidden is True
        assert sorted(image_seen.tags) == ["amphora", "x-tag"]
        assert image_seen.visibility == "community"
        assert (image_seen.min_disk, image_seen.min_ram) == (2, 64)
        assert image_seen.protected is True


def test_an_update_sets_the_fields_but_never_unprotects(world, tmp_path):
    created = upload(world, tmp_path, REGION_B, "update-fields")
    changed = listed(world.master, REGION_B, created.id).copy(
        tags=("one",), hidden=True, min_ram=128, protected=True, visibility="shared"
    )
    world.master.update(REGION_B, changed)
    found = listed(world.master, REGION_B, created.id)
    assert (found.tags, found.hidden, found.min_ram, found.protected) == (("one",), True, 128, True)
    assert found.visibility == "shared"
    world.master.update(REGION_B, found.copy(tags=(), protected=False))
    found = listed(world.master, REGION_B, created.id)
    assert found.tags == () and found.protected is True


def test_each_target_sees_only_its_own_regions_images(world, tmp_path):
    created = upload(world, tmp_path, REGION_C, "elsewhere", facade=world.other)
    assert listed(world.other, REGION_C, created.id) is not None
    for region in (MASTER_REGION, REGION_A, REGION_B):
        assert listed(world.master, region, created.id) is None


def test_download_describes_the_image_it_streams(world, tmp_path):
    created = upload(world, tmp_path, MASTER_REGION, "source")
    data = world.master.download(MASTER_REGION, created)
    try:
        assert (data.size, data.checksum) == (created.size, created.checksum)
    finally:
        data.close()


# --------------------------------------------------------------------------- pre-flight


def test_the_preflight_answers_are_the_regions_or_cannot_tell(world):
    # The mock cannot tell (None: every check passes); a Glance answers with its schema's
    # formats and its quota usage, empty where it does not enforce unified limits.
    for facade, region in (
        (world.master, REGION_A),
        (world.master, REGION_B),
        (world.other, REGION_C),
    ):
        formats = facade.accepted_formats(region)
        if formats is not None:
            assert {"raw", "qcow2"} <= formats.disk_formats
            assert "bare" in formats.container_formats
        limits = facade.image_limits(region)
        assert limits is None or isinstance(limits, dict)
        for entry in (limits or {}).values():
            assert set(entry) == {"usage", "limit"}


def test_read_head_gives_the_first_bytes_or_cannot_tell(world, tmp_path):
    image, data = new_image(world, tmp_path, "head")
    created = world.master.upload(MASTER_REGION, image, data)
    payload = (tmp_path / "head.raw").read_bytes()

    head = world.master.read_head(MASTER_REGION, created, 1000)
    whole = world.master.read_head(MASTER_REGION, created, 10 * len(payload))

    if world.kind == "mock":  # it keeps no bytes
        assert head is None and whole is None
    else:
        assert head == payload[:1000]
        assert whole == payload


def test_read_head_of_a_missing_image_is_a_facade_error_or_cannot_tell(world):
    missing = Image(name="missing", id=str(uuid.uuid4()), size=10)
    try:
        assert world.master.read_head(MASTER_REGION, missing, 1000) is None
    except FacadeError as error:
        assert "missing" in str(error)
