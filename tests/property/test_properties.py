"""Properties that must hold for any master, region and configuration (hypothesis)."""

import dataclasses
import hashlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiwareglancesync.cli import main as sync_main
from fiwareglancesync.config import Config, Credential, TargetConfig
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore, MemoryStore
from fiwareglancesync.image import Image, read_csv, write_csv
from fiwareglancesync.mock import main as load_main
from fiwareglancesync.plan import Status
from fiwareglancesync.region import RegionRef

OURS, THEIRS = "tenant1id", "tenant9id"
REGION = RegionRef("master", "R")
NAMES = ["a", "b", "c", "d", "a_obsolete", "b_obsolete", "e"]
CONTENTS = ["x", "y", "z", "w"]
PROPERTIES = st.dictionaries(
    st.sampled_from(["nid", "type", "sdc"]), st.sampled_from(["1", "2"]), max_size=2
)
SETTLED = {Status.OK, Status.OK_STALLED, Status.ERROR_CHECKSUM, Status.ERROR_AMI}
# As many examples as the hypothesis profile says (tests/conftest.py: few for developers,
# many in CI)...
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# ...and a fifth of them where every example writes, loads and backs up whole stores.
STORE_SETTINGS = settings(
    max_examples=max(10, settings.default.max_examples // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def digest(content: str) -> str:
    return hashlib.md5(content.encode()).hexdigest()


@st.composite
def master_images(draw):
    count = draw(st.integers(0, 6))
    images = []
    for index in range(count):
        properties = draw(PROPERTIES)
        if index and draw(st.booleans()):
            # kernels/ramdisks point to earlier images, as real AMIs do (no cycles)
            properties["kernel_id"] = f"m{draw(st.integers(0, index - 1))}"
        images.append(
            Image(
                # mostly distinct names; sometimes a shared or obsolete one
                name=draw(st.sampled_from([f"n{index}"] * 3 + NAMES + [f"n{index}_obsolete"])),
                id=f"m{index}",
                region="Master",
                status=draw(st.sampled_from(["active"] * 5 + ["queued"])),
                size=draw(st.integers(0, 5)) * 1048576,
                checksum=digest(draw(st.sampled_from(CONTENTS))),
                owner=draw(st.sampled_from([OURS] * 4 + ["", THEIRS])),
                visibility=draw(st.sampled_from(["public", "public", "public", "private"])),
                user_properties=properties,
            )
        )
    return images


def _regional(draw, index, name, checksum, properties):
    return Image(
        name=name,
        id=f"r{index}",
        region="R",
        status=draw(st.sampled_from(["active"] * 5 + ["queued"])),
        size=draw(st.integers(0, 5)) * 1048576,
        checksum=checksum,
        owner=draw(st.sampled_from([OURS, OURS, OURS, THEIRS, "000tenant1id"])),
        visibility=draw(st.sampled_from(["public", "private"])),
        user_properties=properties,
    )


@st.composite
def regional_images(draw, master=()):
    """Copies of master images (often with the same content) and unrelated images."""
    images = []
    for original in master:
        if draw(st.booleans()):
            same = draw(st.sampled_from([True, True, False]))
            checksum = original.checksum if same else digest(draw(st.sampled_from(CONTENTS)))
            properties = dict(original.user_properties) if draw(st.booleans()) else draw(PROPERTIES)
            images.append(_regional(draw, len(images), original.name, checksum, properties))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from([*NAMES, "a.old", "n0", "n1", "n1_obsolete"]))
        checksum = digest(draw(st.sampled_from(CONTENTS)))
        images.append(_regional(draw, len(images), name, checksum, draw(PROPERTIES)))
    return draw(st.permutations(images))


@st.composite
def worlds(draw):
    master = draw(master_images())
    return master, draw(regional_images(master)), draw(targets())


@st.composite
def targets(draw):
    checksums = st.sets(st.sampled_from([*map(digest, CONTENTS), "any"]), max_size=2)
    return TargetConfig(
        name="master",
        credential=Credential.with_password("admin", "pw", "http://127.0.0.1:5000/v3", "tenant1"),
        tenant_id=OURS,
        forcesyncs=frozenset(draw(st.sets(st.sampled_from(["m0", "m1", "m2"]), max_size=2))),
        metadata_set=frozenset(
            draw(st.one_of(st.just(set()), st.sets(st.sampled_from(["nid", "type"]), max_size=2)))
        ),
        dontupdate=frozenset(d for d in draw(checksums) if d != "any"),
        replace=frozenset(draw(checksums)),
        rename=frozenset(draw(checksums)),
        only_tenant_images=draw(st.booleans()),
        support_obsolete_images=draw(st.booleans()),
        obsolete_syncprops=frozenset(draw(st.sets(st.sampled_from(["nid", "sdc"]), max_size=2))),
    )


def world(master, regional, target):
    store = MemoryStore()
    store.write("Master", master)
    store.write("R", regional)
    config = Config(master_region="Master", targets={"master": target})
    return store, config


def engine(store, config):
    return GlanceSync(config, mock_factory(store))


def snapshot(store):
    return {name: [repr(i) for i in store.read(name)] for name in store.region_names()}


@SETTINGS
@given(worlds())
def test_after_a_sync_a_second_plan_is_settled(world_):
    master, regional, target = world_
    store, config = world(master, regional, target)
    figures = engine(store, config).sync(REGION)
    after = [entry.status for entry in engine(store, config).status(REGION).images]
    assert set(after) <= SETTLED
    # What the sync says it left behind is what the next look finds.
    assert figures.left == dict(Counter(after))


@SETTINGS
@given(worlds())
def test_dry_run_never_changes_the_store(world_):
    master, regional, target = world_
    store, config = world(master, regional, target)
    before = snapshot(store)
    engine(store, config).sync(REGION, dry_run=True)
    assert snapshot(store) == before


@SETTINGS
@given(worlds())
def test_images_of_other_projects_are_never_changed(world_):
    master, regional, target = world_
    # With only_tenant_images = false the operator opted in: other projects' copies count.
    target = dataclasses.replace(target, only_tenant_images=True)
    store, config = world(master, regional, target)
    foreign = {repr(i) for i in regional if i.owner == THEIRS}
    engine(store, config).sync(REGION)
    after = {repr(i) for i in store.read("R") if i.owner == THEIRS}
    assert after == foreign


@SETTINGS
@given(worlds())
def test_obsolete_images_are_never_uploaded(world_):
    master, regional, target = world_
    store, config = world(master, regional, target)
    engine(store, config).sync(REGION)
    created = [i for i in store.read("R") if "$" in i.id]
    assert not [i for i in created if i.name.endswith("_obsolete")]


@STORE_SETTINGS
@given(regional_images())
def test_a_backup_replayed_into_the_mock_gives_the_same_images(regional):
    with tempfile.TemporaryDirectory() as folder:
        backup = Path(folder) / "backup"
        backup.mkdir()
        out = io.StringIO()
        write_csv(out, regional)
        (backup / "backup_R.csv").write_text(out.getvalue())
        assert load_main(["--path", str(Path(folder) / "store"), str(backup)]) == 0
        replayed = JournalStore(Path(folder) / "store").read("R")
    assert replayed == regional
    assert list(read_csv(io.StringIO(out.getvalue()))) == regional


# --------------------------------------------------------------------------- backups

ROUND_TRIP_CONFIG = """\
[main]
master_region = Master
[master]
credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1
[other]
credential = admin,c2VjcmV0,http://127.0.0.1:5001/v3,tenant2
"""
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    TEXT,
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
PROPERTY_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@st.composite
def backup_rows(draw, region):
    return [
        Image(
            name=draw(TEXT),
            id=draw(st.one_of(st.uuids().map(str), TEXT)),
            region=region,
            status=draw(st.sampled_from(["active", "queued", "saving", "killed"])),
            size=draw(st.integers(0, 10**12)),
            checksum=draw(
                st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32))
            ),
            owner=draw(st.sampled_from(["tenant1id", "tenant2id", "", "0001", "someone"])),
            visibility=draw(st.sampled_from(["public", "private"])),
            user_properties=draw(st.dictionaries(TEXT, PROPERTY_VALUES, max_size=4)),
        )
        for _ in range(draw(st.integers(0, 5)))
    ]


@STORE_SETTINGS
@given(st.data())
def test_load_then_make_backup_then_load_gives_the_same_rows(data):
    regions = ["Master", "R1", "other:R2"]
    rows = {region: data.draw(backup_rows(region)) for region in regions}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        scenario = root / "scenario"
        scenario.mkdir()
        for region, images in rows.items():
            with open(scenario / f"backup_{region}.csv", "w", encoding="utf-8", newline="") as out:
                write_csv(out, images)
        (root / "glancesync.conf").write_text(ROUND_TRIP_CONFIG)
        assert load_main(["--path", str(root / "first"), str(scenario)]) == 0
        environ = {
            "GLANCESYNC_CONFIG": str(root / "glancesync.conf"),
            "GLANCESYNC_MOCKPERSISTENT_PATH": str(root / "first"),
        }
        previous = os.getcwd()
        os.chdir(root)
        try:
            status = sync_main(
                ["--make-backup", "master:", "other:"],
                environ=environ,
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            )
        finally:
            os.chdir(previous)
        assert status == 0
        (backup,) = root.glob("backup_glance_*")
        assert load_main(["--path", str(root / "second"), str(backup)]) == 0
        first, second = JournalStore(root / "first"), JournalStore(root / "second")
        assert second.region_names() == first.region_names() == sorted(regions)
        for region in regions:
            assert second.read(region) == first.read(region) == rows[region]
        assert second.project_ids() == {"master": "tenant1id", "other": "tenant2id"}
