"""Table-style tests of the pure planner: selection, statuses, directives, AMI, obsolete."""

import logging

from builders import PROJECT, checksum, image, target

from fiwareglancesync.condition import Condition
from fiwareglancesync.plan import (
    Status,
    filter_master_images,
    is_synchronisable,
    plan_region,
)
from fiwareglancesync.region import RegionRef

R = RegionRef("master", "R")


def statuses(master, regional, config=None, project=PROJECT):
    plan = plan_region(R, master, regional, config or target(), project)
    return {entry.name: entry.status for entry in plan.statuses}


def messages(plan):
    return [message for _, message in plan.notices]


# ----------------------------------------------------------------- master filtering


def test_master_keeps_only_active_named_images_of_the_master_project():
    images = [
        image("good"),
        image("queued", status="queued"),
        image("", image_id="nameless"),
        image("foreign", owner="someoneelse"),
        image("unowned", owner=""),
    ]
    kept, _ = filter_master_images(images, PROJECT)
    assert [i.name for i in kept] == ["good", "unowned"]


def test_master_owner_comparison_ignores_leading_zeros():
    kept, _ = filter_master_images([image("a", owner="000123")], "123")
    assert [i.name for i in kept] == ["a"]
    kept, _ = filter_master_images([image("a", owner="123")], "00123")
    assert [i.name for i in kept] == ["a"]
    kept, _ = filter_master_images([image("a", owner="1230")], "123")
    assert kept == []


def test_master_duplicated_names_are_all_dropped_with_one_warning_each():
    images = [image("dup", "1"), image("dup", "2"), image("dup", "3"), image("single")]
    kept, notices = filter_master_images(images, PROJECT)
    assert [i.name for i in kept] == ["single"]
    assert notices == [(logging.WARNING, "Duplicated images with name dup will be ignored")]


# ----------------------------------------------------------------- selection


def test_selection_rules_in_order():
    config = target(forcesyncs={"forced"}, metadata_set={"nid"})
    assert not is_synchronisable(image("x_obsolete", "forced"), config)  # 1 beats 2
    assert is_synchronisable(image("private", "forced", is_public=False), config)  # 2
    assert not is_synchronisable(image("private", is_public=False), config)  # 4
    assert is_synchronisable(image("tagged", user_properties={"nid": 1}), config)  # 6
    assert not is_synchronisable(image("untagged"), config)  # 6
    assert is_synchronisable(image("untagged"), target())  # 5


def test_condition_overrides_visibility_and_metadata_set():
    config = target(metadata_condition=Condition("not image.is_public"), metadata_set={"nid"})
    assert is_synchronisable(image("private", is_public=False), config)
    assert not is_synchronisable(image("public", user_properties={"nid": 1}), config)


def test_false_condition_with_forcesyncs_is_a_whitelist():
    config = target(metadata_condition=Condition("False"), forcesyncs={"id-a"})
    assert is_synchronisable(image("a"), config)
    assert not is_synchronisable(image("b"), config)


def test_condition_with_metadata_set_intersection():
    config = target(
        metadata_condition=Condition("metadata_set.intersection(image.user_properties)"),
        metadata_set={"type"},
    )
    assert is_synchronisable(image("a", user_properties={"type": "x"}, is_public=False), config)
    assert not is_synchronisable(image("b", user_properties={"other": "x"}), config)


# ----------------------------------------------------------------- statuses


def test_each_content_status():
    master = [image(n) for n in ("same", "absent", "stalled", "renamed", "replaced", "unknown")]
    config = target(
        dontupdate={checksum("old-stalled")},
        rename={checksum("old-renamed")},
        replace={checksum("old-replaced")},
    )
    regional = [
        image("same"),
        image("stalled", checksum=checksum("old-stalled")),
        image("renamed", checksum=checksum("old-renamed")),
        image("replaced", checksum=checksum("old-replaced")),
        image("unknown", checksum=checksum("old-unknown")),
    ]
    assert statuses(master, regional, config) == {
        "same": Status.OK,
        "absent": Status.PENDING_UPLOAD,
        "stalled": Status.OK_STALLED,
        "renamed": Status.PENDING_RENAME,
        "replaced": Status.PENDING_REPLACE,
        "unknown": Status.ERROR_CHECKSUM,
    }


def test_directive_precedence_is_dontupdate_rename_replace_rename_any_replace_any():
    old = checksum("old")
    master, regional = [image("a")], [image("a", checksum=old)]
    cases = [
        (dict(dontupdate={old}, rename={old, "any"}, replace={old, "any"}), Status.OK_STALLED),
        (dict(rename={old}, replace={old}), Status.PENDING_RENAME),
        (dict(replace={old}, rename={"any"}), Status.PENDING_REPLACE),
        (dict(rename={"any"}, replace={"any"}), Status.PENDING_RENAME),
        (dict(replace={"any"}), Status.PENDING_REPLACE),
        (dict(replace={checksum("other")}), Status.ERROR_CHECKSUM),
        (dict(dontupdate={checksum("other")}, replace={"any"}), Status.PENDING_REPLACE),
    ]
    for directives, expected in cases:
        assert statuses(master, regional, target(**directives)) == {"a": expected}, directives


def test_error_checksum_logs_the_operator_message_with_the_regional_checksum():
    old = checksum("old")
    plan = plan_region(R, [image("a")], [image("a", checksum=old)], target(), PROJECT)
    assert plan.statuses[0].status == Status.ERROR_CHECKSUM
    assert old in plan.statuses[0].message
    assert (
        f"Image a has a different checksum ({old}) in region R than in the master region. "
        "It was not set what to do. Please, fill either dontupdate, replace or rename with "
        "the checksum."
    ) in messages(plan)


def test_metadata_differences():
    master = [
        image("vis", is_public=True, user_properties={"nid": "1"}),
        image("prop", user_properties={"nid": "1"}),
        image("removed", user_properties={"type": "base"}),
        image("numeric", user_properties={"nid": 3}),
        image("local", user_properties={"nid": "1"}),
    ]
    regional = [
        image("vis", is_public=False, user_properties={"nid": "1"}),
        image("prop", user_properties={"nid": "2"}),
        image("removed", user_properties={"type": "base", "nid": "9"}),
        image("numeric", user_properties={"nid": "3"}),
        image("local", user_properties={"nid": "1", "local": "yes"}),
    ]
    assert statuses(master, regional, target(metadata_set={"nid", "type"})) == {
        "vis": Status.PENDING_METADATA,
        "prop": Status.PENDING_METADATA,
        "removed": Status.PENDING_METADATA,  # absent in master counts as None
        "numeric": Status.OK,  # Glance stores strings: 3 and '3' are equal
        "local": Status.OK,  # properties outside metadata_set are regional business
    }


def test_empty_metadata_set_compares_every_master_property():
    master = [image("a", user_properties={"x": "1", "y": "2"}), image("b", user_properties={})]
    regional = [image("a", user_properties={"x": "1"}), image("b", user_properties={"z": "3"})]
    assert statuses(master, regional) == {"a": Status.PENDING_METADATA, "b": Status.OK}


def test_only_tenant_images_ignores_other_projects_with_a_warning():
    master = [image("a")]
    regional = [image("a", "foreign", owner="other")]
    plan = plan_region(R, master, regional, target(), PROJECT)
    assert plan.statuses[0].status == Status.PENDING_UPLOAD
    assert "R: image a (UUID foreign) is owned by other tenant: other" in messages(plan)
    assert statuses(master, regional, target(only_tenant_images=False)) == {"a": Status.OK}


def test_with_only_tenant_images_false_another_projects_copy_is_the_regional_copy():
    master = [image("a", user_properties={"nid": "1"}), image("b", checksum=checksum("new"))]
    regional = [
        image("a", "ra", owner="other", user_properties={"nid": "old"}),
        image("b", "rb", owner="other", checksum=checksum("old")),
    ]
    opted_in = target(only_tenant_images=False, replace=frozenset({"any"}))
    plan = plan_region(R, master, regional, opted_in, PROJECT)
    assert {s.name: s.status for s in plan.statuses} == {
        "a": Status.PENDING_METADATA,
        "b": Status.PENDING_REPLACE,
    }
    warning = "R: image a (UUID ra) is owned by other tenant: other"
    assert warning in messages(plan)
    assert warning in messages(plan_region(R, master, regional, target(), PROJECT))


def test_regional_owner_comparison_ignores_leading_zeros():
    master = [image("a")]
    assert statuses(master, [image("a", owner="0042")], project="42") == {"a": Status.OK}


def test_non_active_regional_image_is_absent_with_the_documented_warning():
    plan = plan_region(R, [image("a")], [image("a", "q", status="queued")], target(), PROJECT)
    assert plan.statuses[0].status == Status.PENDING_UPLOAD
    assert "R: state of image a with UUID q  is not active: queued" in messages(plan)


def test_regional_duplicate_prefers_the_copy_with_the_master_checksum():
    master = [image("a")]
    regional = [image("a", "wrong", checksum=checksum("x")), image("a", "right")]
    plan = plan_region(R, master, regional, target(), PROJECT)
    assert plan.statuses[0].status == Status.OK
    assert plan.statuses[0].regional.id == "right"
    assert "R: image name a is duplicated. UUIDs: wrong right" in messages(plan)


def test_regional_duplicate_without_match_uses_the_first_listed():
    master = [image("a")]
    regional = [
        image("a", "first", checksum=checksum("x")),
        image("a", "second", checksum=checksum("y")),
    ]
    plan = plan_region(R, master, regional, target(), PROJECT)
    assert plan.statuses[0].regional.id == "first"


def test_status_rows_are_sorted_by_size_then_name():
    master = [image("b", size=5), image("a", size=5), image("c", size=1)]
    plan = plan_region(R, master, [], target(), PROJECT)
    assert [entry.row() for entry in plan.statuses] == [
        "pending_upload,R,c",
        "pending_upload,R,a",
        "pending_upload,R,b",
    ]


# ----------------------------------------------------------------- AMI


def ami_master(kernel_size=10, image_size=100):
    kernel = image("kernel", "mk", size=kernel_size)
    ramdisk = image("ramdisk", "mr", size=5)
    ami = image(
        "ami", "ma", size=image_size, user_properties={"kernel_id": "mk", "ramdisk_id": "mr"}
    )
    return [kernel, ramdisk, ami]


def test_ami_dependencies_go_first_whatever_their_size():
    plan = plan_region(R, ami_master(kernel_size=10_000, image_size=100), [], target(), PROJECT)
    assert [entry.name for entry in plan.transfers] == ["ramdisk", "kernel", "ami"]


def cycle_master():
    # Two images naming each other as kernel: no real AMI does it, but a planner must end.
    return [
        image("big", "mb", size=5000, user_properties={"kernel_id": "ms"}),
        image("small", "ms", size=10, user_properties={"kernel_id": "mb"}),
    ]


def test_a_kernel_cycle_ends_where_it_closes():
    plan = plan_region(R, cycle_master(), [], target(), PROJECT)
    # small (first by size) pulls its kernel big before it; big's kernel, small, is
    # where the cycle closes, so the walk stops there.
    assert [(e.name, e.status) for e in plan.statuses] == [
        ("small", Status.PENDING_UPLOAD),
        ("big", Status.PENDING_UPLOAD),
    ]
    assert [t.name for t in plan.transfers] == ["big", "small"]


def test_in_a_kernel_cycle_a_present_image_waits_for_the_missing_one():
    regional = [image("small", "rs", size=10, user_properties={"kernel_id": "rb"})]
    plan = plan_region(R, cycle_master(), regional, target(), PROJECT)
    assert {e.name: e.status for e in plan.statuses} == {
        "small": Status.PENDING_AMI,
        "big": Status.PENDING_UPLOAD,
    }
    assert [(type(a).__name__, a.name) for a in plan.actions] == [
        ("Transfer", "big"),
        ("UpdateMetadata", "small"),
    ]


def test_an_image_naming_itself_as_kernel_is_planned_like_any_other():
    master = [image("selfish", "mx", user_properties={"kernel_id": "mx"})]
    regional = [image("selfish", "rx", user_properties={"kernel_id": "rx"})]
    assert statuses(master, regional) == {"selfish": Status.OK}
    assert statuses(master, []) == {"selfish": Status.PENDING_UPLOAD}


def test_ami_present_waits_for_its_kernel():
    regional = [image("ramdisk", "rr"), image("ami", "ra", user_properties={"ramdisk_id": "rr"})]
    result = statuses(ami_master(), regional)
    assert result == {
        "ramdisk": Status.OK,
        "kernel": Status.PENDING_UPLOAD,
        "ami": Status.PENDING_AMI,
    }


def test_ami_ids_are_compared_by_name_not_uuid():
    regional = [
        image("kernel", "rk"),
        image("ramdisk", "rr"),
        image("ami", "ra", user_properties={"kernel_id": "rk", "ramdisk_id": "rr"}),
    ]
    assert statuses(ami_master(), regional)["ami"] == Status.OK
    wrong = [
        *regional[:2],
        image("ami", "ra", user_properties={"kernel_id": "rr", "ramdisk_id": "rr"}),
    ]
    assert statuses(ami_master(), wrong)["ami"] == Status.PENDING_METADATA


def test_ami_with_a_dependency_the_target_does_not_synchronise_is_error_ami():
    master = ami_master()
    master[0].visibility = "private"  # the kernel is no longer selected
    regional = [image("ramdisk", "rr"), image("ami", "ra", user_properties={"ramdisk_id": "rr"})]
    result = statuses(master, regional)
    assert result["ami"] == Status.ERROR_AMI
    assert "kernel" not in result


def test_own_upload_status_wins_over_ami_statuses():
    master = ami_master()
    master[0].visibility = "private"
    assert statuses(master, [])["ami"] == Status.PENDING_UPLOAD


def test_ami_pointing_outside_the_master_is_error_ami_not_a_crash():
    master = [image("ami", "ma", user_properties={"kernel_id": "nowhere"})]
    plan = plan_region(R, master, [], target(), PROJECT)
    assert plan.statuses[0].status == Status.ERROR_AMI
    assert "nowhere" in plan.statuses[0].message
    assert plan.transfers == []


# ----------------------------------------------------------------- obsolete


def obsolete_master():
    return [
        image(
            "deb_obsolete",
            "mo",
            checksum=checksum("deb"),
            is_public=False,
            user_properties={"sdc": "no", "nid": "1"},
        )
    ]


def test_obsolete_master_image_is_never_uploaded():
    plan = plan_region(R, obsolete_master(), [], target(forcesyncs={"mo"}), PROJECT)
    assert plan.statuses == [] and plan.transfers == []


def test_regional_image_is_renamed_obsolete_with_visibility_and_syncprops():
    regional = [
        image(
            "deb",
            "rd",
            checksum=checksum("deb"),
            user_properties={"sdc": "yes", "nid": "7", "mine": "x"},
        )
    ]
    plan = plan_region(R, obsolete_master(), regional, target(obsolete_syncprops={"sdc"}), PROJECT)
    [update] = plan.obsolete_updates
    assert update.desired.name == "deb_obsolete"
    assert update.desired.is_public is False
    assert update.desired.user_properties == {"sdc": "no", "nid": "7", "mine": "x"}


def test_already_obsolete_regional_image_is_kept_in_step_or_left_alone():
    stale = [image("deb_obsolete", "rd", checksum=checksum("deb"), is_public=True)]
    plan = plan_region(R, obsolete_master(), stale, target(), PROJECT)
    assert [u.desired.is_public for u in plan.obsolete_updates] == [False]
    fresh = [image("deb_obsolete", "rd", checksum=checksum("deb"), is_public=False)]
    assert plan_region(R, obsolete_master(), fresh, target(), PROJECT).obsolete_updates == []


def test_obsolete_never_touches_other_owners_or_other_content_or_disabled_targets():
    foreign = [image("deb", "rd", checksum=checksum("deb"), owner="other")]
    assert plan_region(R, obsolete_master(), foreign, target(), PROJECT).obsolete_updates == []
    different = [image("deb", "rd", checksum=checksum("other"))]
    assert plan_region(R, obsolete_master(), different, target(), PROJECT).obsolete_updates == []
    same = [image("deb", "rd", checksum=checksum("deb"))]
    disabled = target(support_obsolete_images=False)
    assert plan_region(R, obsolete_master(), same, disabled, PROJECT).obsolete_updates == []


def test_obsolete_applies_to_other_owners_when_only_tenant_images_is_false():
    foreign = [image("deb", "rd", checksum=checksum("deb"), owner="other")]
    opted_in = target(only_tenant_images=False)
    updates = plan_region(R, obsolete_master(), foreign, opted_in, PROJECT).obsolete_updates
    assert [(u.current.id, u.desired.name) for u in updates] == [("rd", "deb_obsolete")]


def test_obsolete_is_ignored_when_the_plain_name_is_synchronisable():
    master = [*obsolete_master(), image("deb", "md")]
    regional = [image("deb", "rd", checksum=checksum("deb"))]
    plan = plan_region(R, master, regional, target(), PROJECT)
    assert plan.obsolete_updates == []
    assert (
        "Ignore obsolete master image deb_obsolete because deb exists and it is synchronisable."
        in messages(plan)
    )


def test_synchronised_plan_has_nothing_to_do():
    plan = plan_region(R, [image("a")], [image("a")], target(), PROJECT)
    assert plan.is_synchronised
    assert not plan_region(R, [image("a")], [], target(), PROJECT).is_synchronised
