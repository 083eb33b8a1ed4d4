"""The agent's pure parts (change detection, coalescing, reading a notification) and the
engine's narrow operations it needs (the master alone, a sync of just some images)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from builders import image, target

from fiwareglancesync.agent.bus import MalformedNotification, image_ids_of
from fiwareglancesync.agent.changes import FIELD_WORDS, Kind, changed_fields, detect_changes
from fiwareglancesync.agent.coalesce import Coalescer
from fiwareglancesync.config import load_config
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade
from fiwareglancesync.image import Image
from fiwareglancesync.plan import only_images, plan_region
from fiwareglancesync.region import RegionRef

EXAMPLE_CONFIG = Path(__file__).parents[2] / "examples" / "glancesync.conf"
LEON = RegionRef.parse("Leon")
REGION = RegionRef.parse("Region")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- changes


def test_nothing_known_yet_is_no_change():
    assert detect_changes(None, [image("a")]) == []


def test_the_same_listing_twice_is_no_change_whatever_the_order():
    listing = [image("a"), image("b", user_properties={"x": "1"})]
    again = [image("b", user_properties={"x": "1"}), image("a")]
    assert detect_changes(listing, again) == []


def test_new_changed_and_deleted_images_are_told_apart():
    old = [image("a"), image("b"), image("c")]
    new = [image("a"), image("b", checksum="other"), image("d")]
    changes = detect_changes(old, new)
    assert [(c.image_id, c.kind) for c in changes] == [
        ("id-b", Kind.CHANGED),
        ("id-d", Kind.NEW),
        ("id-c", Kind.DELETED),
    ]
    assert changes[0].fields == ("checksum",)
    assert changes[0].describe() == "image b (id-b) changed: checksum"
    assert changes[2].describe() == "deleted image c (id-c)"


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"user_properties": {"type": "baseimage"}}, "properties"),
        ({"visibility": "shared"}, "visibility"),
        ({"name": "renamed"}, "name"),
        ({"members": ("p2",)}, "members"),
        ({"os_hash_value": "abc"}, "checksum"),
        ({"size": 5}, "size"),
    ],
)
def test_each_field_a_sync_reads_is_a_change(change, word):
    old = image("a", visibility="public")
    new = old.copy(**change)
    assert changed_fields(old, new) == (word,)


def test_the_region_a_listing_came_from_is_no_change():
    old = image("a", region="Spain")
    assert changed_fields(old, old.copy(region="Other")) == ()


def test_every_field_compared_is_one_of_the_image():
    assert set(FIELD_WORDS) <= set(Image.__dataclass_fields__)


# --------------------------------------------------------------------------- coalescing


def test_a_burst_of_events_for_one_image_is_one_pending_sync():
    clock = Clock()
    coalescer = Coalescer(delay=1.0, clock=clock)
    assert coalescer.wait_time() is None
    assert coalescer.add("i1", "notification") is True
    for _ in range(999):
        clock.now += 0.0005
        assert coalescer.add("i1", "notification") is False
    assert coalescer.received == 1000
    assert coalescer.coalesced == 999
    assert len(coalescer) == 1
    batch = coalescer.take()
    assert list(batch) == ["i1"]
    assert batch["i1"].events == 1000
    assert batch["i1"].first_seen == 100.0
    assert len(coalescer) == 0


def test_the_batch_is_due_when_its_oldest_event_has_waited():
    clock = Clock()
    coalescer = Coalescer(delay=2.0, clock=clock)
    coalescer.add("i1", "poll")
    clock.now += 1.5
    coalescer.add("i2", "notification")
    assert coalescer.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    assert coalescer.wait_time() == 0
    assert set(coalescer.take()) == {"i1", "i2"}


def test_events_during_a_sync_make_the_next_batch():
    clock = Clock()
    coalescer = Coalescer(delay=0, clock=clock)
    coalescer.add("i1", "notification")
    first = coalescer.take()
    coalescer.add("i1", "notification")  # while the first batch syncs
    assert list(first) == ["i1"]
    assert list(coalescer.take()) == ["i1"]


def test_a_batch_put_back_keeps_its_first_sighting():
    clock = Clock()
    coalescer = Coalescer(delay=0, clock=clock)
    coalescer.add("i1", "poll")
    batch = coalescer.take()
    clock.now += 10
    coalescer.add("i1", "notification")
    coalescer.put_back(batch)
    entry = coalescer.take()["i1"]
    assert entry.first_seen == 100.0
    assert entry.events == 2
    assert entry.sources == {"poll", "notification"}


def test_an_audit_forgets_what_it_covered_only():
    clock = Clock()
    coalescer = Coalescer(delay=0, clock=clock)
    coalescer.add("old", "poll")
    clock.now += 5
    coalescer.add("new", "poll")
    assert set(coalescer.forget_before(103.0)) == {"old"}
    assert set(coalescer.take()) == {"new"}


def test_threads_adding_at_once_lose_no_event():
    coalescer = Coalescer(delay=0)

    def add(n: int) -> None:
        for i in range(500):
            coalescer.add(f"i{i % 7}", f"t{n}")

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert coalescer.received == 2000
    assert coalescer.coalesced == 2000 - 7
    assert sum(entry.events for entry in coalescer.take().values()) == 2000


# --------------------------------------------------------------------------- notifications


@pytest.mark.parametrize(
    ("event_type", "payload", "ids"),
    [
        ("image.activate", {"id": "abc", "name": "x"}, ["abc"]),
        ("image.update", {"id": " abc "}, ["abc"]),
        ("image.delete", {"id": "abc"}, ["abc"]),
        ("image.member.create", {"image_id": "abc", "member_id": "p"}, ["abc"]),
        ("image.send", {"image_id": "abc"}, []),  # a download: every sync makes some
        ("image.create", {"id": "abc"}, []),  # a queued record: nothing to copy yet
        ("task.success", "anything", []),
    ],
)
def test_a_notification_names_its_image(event_type, payload, ids):
    assert image_ids_of(event_type, payload) == ids


@pytest.mark.parametrize(
    ("event_type", "payload", "reason"),
    [
        (None, {"id": "abc"}, "its event type is not a string"),
        ("image.update", "garbage", "image.update: its payload is not an object"),
        ("image.update", {"name": "x"}, "image.update: its payload has no image id"),
        ("image.update", {"id": 42}, "image.update: its payload has no image id"),
        ("image.member.delete", {"id": "abc"}, "its payload has no image image_id"),
        ("image.activate", {"id": "x" * 300}, "its payload has no image id"),
    ],
)
def test_a_malformed_notification_says_why(event_type, payload, reason):
    with pytest.raises(MalformedNotification, match=reason):
        image_ids_of(event_type, payload)


# --------------------------------------------------------------------------- narrowed plans


def _ami_master() -> list[Image]:
    kernel = image("kernel", disk_format="aki")
    ami = image("ami", user_properties={"kernel_id": "id-kernel"})
    return [kernel, ami, image("other"), image("third")]


def test_a_narrowed_plan_keeps_just_the_images_asked_for_and_their_kernels():
    master = _ami_master()
    plan = plan_region(REGION, master, [], target(), "tenant1id")
    assert {t.master.id for t in plan.transfers} == {"id-kernel", "id-ami", "id-other", "id-third"}
    narrowed = only_images(plan, ["id-ami"], master)
    assert [t.master.id for t in narrowed.transfers] == ["id-kernel", "id-ami"]
    assert narrowed.statuses == plan.statuses  # what the region holds, unchanged
    assert only_images(plan, ["id-gone"], master).actions == []


def test_a_narrowed_plan_keeps_the_metadata_update_of_the_image():
    master = [image("a", user_properties={"p": "2"}), image("b", user_properties={"p": "2"})]
    regional = [
        image("a", "r-a", user_properties={"p": "1"}),
        image("b", "r-b", user_properties={"p": "1"}),
    ]
    plan = plan_region(REGION, master, regional, target(), "tenant1id")
    assert len(plan.actions) == 2
    narrowed = only_images(plan, ["id-b"], master)
    assert [action.name for action in narrowed.actions] == ["b"]


# --------------------------------------------------------------------------- the engine


def _engine(store: Path) -> GlanceSync:
    config = load_config({"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)})
    return GlanceSync(config, mock_factory(JournalStore(store)))


class CountingFacade(MockFacade):
    listed: list[str] = []

    def list_images(self, region):
        CountingFacade.listed.append(region.fullname)
        return super().list_images(region)


def test_the_master_images_are_listed_without_any_region(store):
    CountingFacade.listed = []
    config = load_config({"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)})
    mock = JournalStore(store)
    engine = GlanceSync(config, lambda t: CountingFacade(mock, t))
    try:
        names = {i.name for i in engine.master_images(fresh=True)}
    finally:
        engine.close()
    assert CountingFacade.listed == ["Valladolid"]
    assert "cirros_ami" in names
    assert "windows_eval" not in names  # a duplicated name: a sync leaves it alone too


def test_a_sync_of_some_images_leaves_the_rest_pending(store):
    engine = _engine(store)
    try:
        master = {i.name: i for i in engine.master_images()}
        before = {t.name for t in engine.plan(LEON).transfers}
        assert {"cirros_ami", "cirros_kernel", "fedora_38"} <= before
        figures = engine.sync(LEON, only=[master["cirros_ami"].id])
        after = {t.name for t in engine.plan(LEON).transfers}
    finally:
        engine.close()
    # The AMI and its kernel and ramdisk, nothing else.
    assert figures.uploaded_images == 3
    assert before - after == {"cirros_ami", "cirros_kernel", "cirros_ramdisk"}
    assert "fedora_38" in after
