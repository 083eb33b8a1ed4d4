"""The engine's operations called as a long-running caller would: one engine, in a loop.

Real engine, real persistent mock (the bundled example); no call order to respect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fiwareglancesync.config import load_config
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import FacadeError, GlanceSyncError
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade
from fiwareglancesync.image import read_csv
from fiwareglancesync.region import RegionRef

EXAMPLE_CONFIG = Path(__file__).parents[2] / "examples" / "glancesync.conf"
LEON = RegionRef.parse("Leon")


def make_engine(store, factory=None) -> GlanceSync:
    config = load_config({"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)})
    return GlanceSync(config, factory or mock_factory(JournalStore(store)))


def add_master_image(store, name: str) -> None:
    """Another public image in the master, written by another process's store."""
    writer = JournalStore(store)
    images = writer.read("Valladolid")
    writer.write("Valladolid", [*images, images[0].copy(id=f"m-{name}", name=name)])


def test_an_engine_needs_facades_or_a_cache():
    with pytest.raises(TypeError):
        GlanceSync(load_config({"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)}))


def test_each_call_sees_a_fresh_master_when_asked(store):
    engine = make_engine(store)
    try:
        assert len(engine.status(LEON).images) == 10
        add_master_image(store, "zz_new")
        # Without asking, the engine keeps the listing it has (one listing per run).
        assert len(engine.status(LEON).images) == 10
        fresh = engine.status(LEON, fresh=True)
        assert "zz_new" in [entry.name for entry in fresh.images]
        assert fresh.master_age >= 0
        # The plan and the sync work from that listing too, in any order.
        assert "zz_new" in [action.name for action in engine.plan(LEON).transfers]
        figures = engine.sync(LEON)
        assert figures.uploaded_images == 11
    finally:
        engine.close()


def test_a_sync_tidies_its_region_up(store):
    engine = make_engine(store)
    try:
        engine.sync(LEON)
        # Before the engine is closed: the region's journal is already folded into its
        # snapshot, which now lists what the sync uploaded.
        with open(store / "backup_Leon.csv", encoding="utf-8") as snapshot:
            assert len(read_csv(snapshot)) == 10
        again = engine.sync(LEON)  # and the engine goes on working
        assert again.changes == 0 and again.left == {"ok": 10}
    finally:
        engine.close()


class Buggy(MockFacade):
    def list_images(self, region):
        if region.name == "Leon":
            raise ValueError("a bug in a facade")
        return super().list_images(region)


def test_only_expected_errors_become_region_errors(store):
    engine = make_engine(store, lambda target: Buggy(JournalStore(store), target))
    try:
        with pytest.raises(ValueError, match="a bug in a facade") as raised:
            engine.status(LEON)
        assert not isinstance(raised.value, GlanceSyncError)
        assert len(engine.status(RegionRef.parse("Burgos")).images) == 10
    finally:
        engine.close()


class NoCatalog(MockFacade):
    def regions(self):
        if self.target.name == "other":
            raise FacadeError("Keystone did not answer", service="Keystone")
        return super().regions()


def test_the_federation_report_shows_what_failed_beside_the_rest(store):
    engine = make_engine(store, lambda target: NoCatalog(JournalStore(store), target))
    try:
        report = engine.federation_report()
    finally:
        engine.close()
    by_region = {region.region: region for region in report.regions}
    assert by_region["other:"].error == "Keystone is unavailable"
    assert by_region["Leon"].ok and by_region["Leon"].counts()["pending_upload"] == 10
    assert set(by_region) == {"other:", "Burgos", "Leon"}
    assert report.master_region == "Valladolid"
