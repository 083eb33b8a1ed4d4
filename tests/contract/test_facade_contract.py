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
from fiwareglancesync.facades.base import ImageData, ImportSource
from fiwareglancesync.image import Image, same_owner
from fiwareglancesync.preflight import IMAGE_COUNT_TOTAL, IMAGE_SIZE_TOTAL
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


def each_region(world):
    return ((world.master, REGION_A), (world.master, REGION_B), (world.other, REGION_C))


def test_the_preflight_answers_are_the_regions(world):
    # Both answer with the formats of the region's image schema and its quota usage,
    # empty where a Glance does not enforce unified limits.
    for facade, region in each_region(world):
        formats = facade.accepted_formats(region)
        assert formats is not None
        assert {"raw", "qcow2"} <= formats.disk_formats
        assert "bare" in formats.container_formats
        limits = facade.image_limits(region)
        assert isinstance(limits, dict)
        for entry in limits.values():
            assert set(entry) == {"usage", "limit"}


def test_the_preflight_questions_about_an_unknown_region_are_facade_errors(world):
    for ask in (
        world.master.accepted_formats,
        world.master.image_limits,
        world.master.import_methods,
    ):
        with pytest.raises(FacadeError, match="Atlantis"):
            ask(ATLANTIS)


def test_an_upload_of_a_format_the_region_does_not_accept_is_refused(world, tmp_path):
    image, data = new_image(world, tmp_path, "unaccepted")
    wanted = image.copy(disk_format="nonsense")
    assert "nonsense" not in world.master.accepted_formats(REGION_A).disk_formats
    with pytest.raises(FacadeError, match="nonsense"):
        world.master.upload(REGION_A, wanted, data)
    assert named(world.master, REGION_A, image.name) == []


def test_the_quota_usage_counts_the_projects_own_images(world, tmp_path):
    # RegionB's Glance enforces unified limits (unlimited until a test sets one); the
    # mock counts in every region and limits none.
    def usage(resource: str) -> dict:
        limits = world.master.image_limits(REGION_B)
        assert limits is not None and resource in limits
        return limits[resource]

    count, size = usage(IMAGE_COUNT_TOTAL), usage(IMAGE_SIZE_TOTAL)
    created = upload(world, tmp_path, REGION_B, "counted")
    world.add_foreign("RegionB", world.name("not-counted"), True)
    assert usage(IMAGE_COUNT_TOTAL) == {"usage": count["usage"] + 1, "limit": count["limit"]}
    # MiB rounded down, of every byte the project stores: 64 KiB adds at most one.
    assert size["usage"] <= usage(IMAGE_SIZE_TOTAL)["usage"] <= size["usage"] + 1
    assert world.master.delete(REGION_B, created.id)
    assert usage(IMAGE_COUNT_TOTAL) == count


def test_import_methods_are_names_and_an_import_needs_one(world, tmp_path):
    for facade, region in each_region(world):
        methods = facade.import_methods(region)
        assert isinstance(methods, frozenset)
        assert all(isinstance(method, str) and method for method in methods)
    source = upload(world, tmp_path, MASTER_REGION, "import-source")
    wanted = source.copy(id="", name=world.name("imported"), owner=None, region=None)
    fallbacks: list[ImageData] = []

    def fallback() -> ImageData:
        fallbacks.append(ImageData.from_file(str(tmp_path / "import-source.raw"), source))
        return fallbacks[-1]

    where = ImportSource(MASTER_REGION, source, timeout=120)
    if "glance-download" not in world.master.import_methods(REGION_A):
        with pytest.raises(FacadeError):
            world.master.import_image(REGION_A, wanted, where, fallback)
        assert named(world.master, REGION_A, wanted.name) == [] and fallbacks == []
        return
    created = world.master.import_image(REGION_A, wanted, where, fallback)
    found = listed(world.master, REGION_A, created.id)
    assert found is not None and found.status == "active"
    assert (found.name, found.checksum, found.size) == (wanted.name, source.checksum, source.size)


def test_project_names_and_ids_are_one_mapping(world):
    for facade in (world.master, world.other):
        project_id = facade.project_id()
        names = facade.project_names([project_id])
        assert list(names) == [project_id] and names[project_id]
        assert facade.project_ids_by_name([names[project_id]]) == {names[project_id]: project_id}
        assert facade.project_names([]) == {} and facade.project_ids_by_name([]) == {}


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
