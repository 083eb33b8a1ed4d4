"""The Glance v2 fields a copy carries: which differ, what a copy gets, members."""

import logging

import pytest
from builders import PROJECT, checksum, image, target

from fiwareglancesync.actions import Transfer, UpdateMetadata
from fiwareglancesync.config import SYNC_FIELDS
from fiwareglancesync.fields import Fields, desired, differences, wanted_members
from fiwareglancesync.plan import Status, plan_region
from fiwareglancesync.region import RegionRef

ALL = frozenset(SYNC_FIELDS)
R = RegionRef("master", "R")


def rich(name="amph", image_id=None, **changes):
    fields = dict(
        visibility="public",
        tags=("amphora",),
        hidden=True,
        protected=False,
        min_disk=1,
        min_ram=256,
    )
    fields.update(changes)
    return image(name, image_id, **fields)


# --------------------------------------------------------------------------- differences


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"visibility": "community", "is_public": False}, "visibility"),
        ({"tags": ("other",)}, "tags"),
        ({"hidden": False}, "os_hidden"),
        ({"protected": True}, "protected"),
        ({"min_disk": 5}, "min_disk"),
        ({"min_ram": 1024}, "min_ram"),
    ],
)
def test_each_field_that_differs_is_named(change, field):
    master = rich(**change)
    assert differences(master, rich(), ALL) == [field]
    assert differences(master, rich(), ALL - {field}) == []


def test_tags_compare_as_sets():
    assert differences(rich(tags=("a", "b")), rich(tags=("b", "a")), ALL) == []


def test_protection_is_never_a_difference_to_remove():
    # The region's copy is protected, the master's not: nothing to do, never unprotect.
    assert differences(rich(protected=False), rich(protected=True), ALL) == []


def test_visibility_of_format_1_data_is_not_compared():
    # A nine-column backup knows only is_public: no visibility to compare.
    assert differences(rich(visibility=None), rich(visibility="public"), ALL) == []


def test_missing_members_of_a_shared_copy_differ_extra_ones_do_not():
    master = rich(visibility="shared", is_public=False)
    regional = rich(visibility="shared", is_public=False, members=("p9",))
    assert differences(master, regional, ALL, ("p1",)) == ["members"]
    assert differences(master, regional, ALL, ("p9",)) == []
    assert differences(master, regional, ALL, ()) == []


# --------------------------------------------------------------------------- desired


def test_a_new_copy_gets_every_synchronised_field():
    master = rich(protected=True, tags=("b", "a"))
    assert desired(master, None, ALL) == Fields("public", ("a", "b"), True, True, 1, 256)


def test_a_new_copy_without_synchronised_fields_gets_the_defaults():
    assert desired(rich(protected=True), None, frozenset()) == Fields()


def test_unsynchronised_fields_keep_the_regions_values():
    regional = rich(tags=("local",), min_ram=8, hidden=False)
    wanted = desired(rich(), regional, ALL - {"tags", "min_ram", "os_hidden"})
    assert wanted.tags == ("local",) and wanted.min_ram == 8 and wanted.hidden is False
    assert wanted.min_disk == 1


def test_members_are_added_to_the_regions_own():
    master = rich(visibility="shared", is_public=False)
    regional = rich(visibility="shared", is_public=False, members=("local",))
    assert desired(master, regional, ALL, ("p1",)).members == ("local", "p1")
    assert desired(rich(), None, ALL, ("p1",)).members == ()  # a public copy has none


def test_fields_applied_keep_is_public_in_step():
    copy = Fields(visibility="community").applied_to(rich())
    assert copy.visibility == "community" and copy.is_public is False


# --------------------------------------------------------------------------- planning


def plan(master, regional, **config):
    return plan_region(R, master, regional, target(**config), PROJECT)


def test_a_tag_added_on_the_master_makes_the_copy_pending_metadata_and_the_update_sets_it():
    result = plan([rich(tags=("amphora", "new"))], [rich()])
    assert [entry.status for entry in result.statuses] == [Status.PENDING_METADATA]
    [update] = [a for a in result.actions if isinstance(a, UpdateMetadata)]
    assert update.desired.fields.tags == ("amphora", "new")


def test_sync_fields_keeps_local_tags():
    result = plan([rich(tags=("amphora", "new"))], [rich()], sync_fields=ALL - {"tags"})
    assert [entry.status for entry in result.statuses] == [Status.OK]


def test_an_upload_carries_the_fields():
    [transfer] = [a for a in plan([rich(protected=True)], []).actions if isinstance(a, Transfer)]
    made = transfer.wanted({}, "R")
    assert (made.tags, made.hidden, made.protected, made.min_disk, made.min_ram) == (
        ("amphora",),
        True,
        True,
        1,
        256,
    )


def test_a_protected_copy_under_replace_is_left_with_a_warning_and_a_reason():
    old = checksum("old")
    result = plan([rich()], [rich(checksum=old, protected=True)], replace={old})
    [entry] = result.statuses
    assert entry.status == Status.ERROR_CHECKSUM
    assert "protected in the region: replace" in entry.message
    assert result.actions == []
    [(level, warning)] = [n for n in result.notices if "protected" in n[1]]
    assert level == logging.WARNING and "replace" in warning and "id-amph" in warning


def test_a_protected_copy_under_rename_is_left_too():
    old = checksum("old")
    result = plan([rich()], [rich(checksum=old, protected=True)], rename={old})
    assert [e.status for e in result.statuses] == [Status.ERROR_CHECKSUM]
    assert result.actions == []


def test_a_protected_copy_is_not_marked_obsolete():
    master = [rich("deb_obsolete", "mo", checksum=checksum("deb"))]
    regional = [rich("deb", "r1", checksum=checksum("deb"), protected=True)]
    result = plan(master, regional, forcesyncs={"mo"})
    assert result.obsolete_updates == []
    assert any("not marked obsolete" in message for _, message in result.notices)


# --------------------------------------------------------------------------- members


def shared(image_id, *members):
    return rich(image_id, image_id, visibility="shared", is_public=False, members=members)


def test_named_members_map_to_the_targets_ids_and_missing_ones_warn():
    result = wanted_members([shared("s1")], "other", ("p2", "gone"), {}, {"p2": "id-p2"}, "own")
    assert result.by_image == {"s1": ("id-p2",)}
    [warning] = result.warnings
    assert "gone" in warning and "target other" in warning


def test_same_members_map_by_name_per_image():
    images = [shared("s1", "a-p2", "a-p3"), shared("s2", "a-p2", "unknown")]
    names = {"a-p2": "project2", "a-p3": "project3"}
    result = wanted_members(images, "other", None, names, {"project2": "b-p2"}, "own")
    assert result.by_image == {"s1": ("b-p2",), "s2": ("b-p2",)}
    assert any("unknown" in w for w in result.warnings)
    assert any("project3" in w for w in result.warnings)


def test_the_targets_own_project_is_never_a_member():
    result = wanted_members([shared("s1")], "t", ("mine",), {}, {"mine": "own"}, "own")
    assert result.by_image == {"s1": ()} and result.warnings == ()
