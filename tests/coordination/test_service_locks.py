"""The REST service's syncs and sync.py take the same region lock (coordination_url).

A service sync waits for, or skips, a region a sync.py-like process holds, with the
same warning as sync.py; and a sync.py run skips a region a service sync is in. The
service's task (its SQL record) keeps what happened.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.settings import Settings
from fiwareglancesync.config import load_config
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade
from fiwareglancesync.image import Image
from fiwareglancesync.region import RegionRef
from tests.api.api_support import ADMIN, WAIT, make_app, tokens, wait_for_task
from tests.coordination.conftest import EXAMPLE_CONFIG, ROOT
from tests.coordination.test_sync_locks import hold_lock
from tests.fixtures.redis import RedisServer


class GatedFacade(MockFacade):
    """The persistent mock; listing Burgos waits for the test (the sync holds its lock)."""

    gate = threading.Event()
    listing = threading.Event()

    def list_images(self, region: RegionRef) -> list[Image]:
        if region.name == "Burgos":
            self.listing.set()
            if not self.gate.wait(WAIT):
                raise RuntimeError("the test never released the listing")
        return super().list_images(region)


@pytest.fixture
def service(
    redis_server: RedisServer, store: Path, tmp_path: Path
) -> Iterator[tuple[Flask, GatedFacade]]:
    config = load_config(
        {"GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG)},
        [f"main.coordination_url={redis_server.url}", "main.lock_timeout=0.5"],
    )
    GatedFacade.gate.set()
    GatedFacade.listing.clear()

    def engine() -> GlanceSync:
        return GlanceSync(config, lambda target: GatedFacade(JournalStore(store), target))

    verifier = StaticVerifier(
        tokens(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)), service_project="project-id"
    )
    settings = Settings(database_uri=f"sqlite:///{tmp_path / 'api.db'}", task_lease_seconds=30)
    app = make_app(settings, verifier, engine)
    yield app, GatedFacade
    GatedFacade.gate.set()
    app.extensions["glancesync"].runner.wait(WAIT)


def start_sync(app: Flask, region: str) -> str:
    response = app.test_client().post(f"/regions/{region}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["taskId"]


def test_a_service_sync_skips_a_region_another_process_holds(
    service, redis_server: RedisServer, store: Path, tmp_path: Path
):
    app, _ = service
    holder = hold_lock(redis_server.url, tmp_path / "unused", store)
    try:
        task_id = start_sync(app, "Burgos")
        task = wait_for_task(app.test_client(), "Burgos", task_id)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # it lets go of the lock, as a run that ends does
        holder.wait(WAIT)
    assert task["status"] == "failed"
    assert task["message"] == (
        "skipped: another GlanceSync run (pid 4242 (the other run)) is synchronising "
        "this region; waited 0.5 s (lock_timeout)"
    )
    # Once the other process has let go, the service's next sync goes through.
    again = start_sync(app, "Burgos")
    assert wait_for_task(app.test_client(), "Burgos", again)["status"] == "synced"


def test_sync_py_skips_a_region_a_service_sync_is_in(
    service, redis_server: RedisServer, store: Path
):
    app, facade = service
    facade.gate.clear()
    task_id = start_sync(app, "Burgos")
    assert facade.listing.wait(WAIT)  # the service's sync holds Burgos's lock now
    environ = dict(
        os.environ, GLANCESYNC_CONFIG=str(EXAMPLE_CONFIG), GLANCESYNC_MOCKPERSISTENT_PATH=str(store)
    )
    argv = [
        "Burgos",
        "--config",
        f"main.coordination_url={redis_server.url}",
        "main.lock_timeout=0.5",
    ]
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "sync.py"), *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        facade.gate.set()
    assert done.returncode == 1
    assert f"WARNING:Burgos: skipped: another GlanceSync run (pid {os.getpid()} on " in done.stdout
    assert "is synchronising this region; waited 0.5 s (lock_timeout)" in done.stdout
    assert wait_for_task(app.test_client(), "Burgos", task_id)["status"] == "synced"
