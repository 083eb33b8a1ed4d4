"""Helpers of the API tests: tokens, an engine on the mock cloud that tests can steer."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import flask_migrate
from flask import Flask

from fiwareglancesync.app import create_app
from fiwareglancesync.app.auth import Identity, TokenVerifier
from fiwareglancesync.app.settings import Settings
from fiwareglancesync.config import TargetConfig, load_config
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.facades.mock_facade import MemoryStore, MockFacade, MockStore, region_of_file
from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.image import Image, read_csv
from fiwareglancesync.region import RegionRef

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ADMIN = {"X-Auth-Token": "admin-token"}
MEMBER = {"X-Auth-Token": "member-token"}
WAIT = 30.0  # seconds a test waits for a background thread before giving up


def tokens(expires_at: dt.datetime) -> dict[str, Identity]:
    def identity(name: str, *roles: str) -> Identity:
        return Identity(f"{name}-id", name, "project-id", frozenset(roles), expires_at)

    return {
        "admin-token": identity("alice", "admin", "member"),
        "member-token": identity("bob", "member"),
        "operator-token": identity("carol", "glancesync_operator"),
    }


def example_store() -> MockStore:
    """The example scenario in an in-memory mock store."""
    store = MemoryStore()
    for path in sorted((EXAMPLES / "scenario").iterdir()):
        region = region_of_file(path.name)
        if region is not None:
            with open(path, encoding="utf-8", newline="") as stream:
                images = list(read_csv(stream, str(path)))
            for image in images:
                image.region = region
            store.write(region, images)
    return store


class FaultyFacade(Facade):
    """The mock facade, with faults a test switches on (unreachable server, hang)."""

    def __init__(self, inner: MockFacade, switch: EngineSwitch):
        self.inner = inner
        self.switch = switch

    def _maybe_fail(self, operation: str) -> None:
        error = self.switch.faults.get(operation)
        if error is not None:
            raise error

    def regions(self) -> list[str]:
        self._maybe_fail("regions")
        return self.inner.regions()

    def project_id(self) -> str:
        return self.inner.project_id()

    def project_names(self, project_ids: Iterable[str]) -> dict[str, str]:
        return self.inner.project_names(project_ids)

    def project_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        return self.inner.project_ids_by_name(names)

    def list_images(self, region: RegionRef) -> list[Image]:
        self._maybe_fail("list_images")
        return self.inner.list_images(region)

    def upload(self, region: RegionRef, image: Image, data: ImageData | None) -> Image:
        self._maybe_fail("upload")
        return self.inner.upload(region, image, data)

    def update(self, region: RegionRef, image: Image) -> None:
        self.inner.update(region, image)

    def image_limits(self, region: RegionRef) -> dict[str, Any] | None:
        return self.switch.limits  # what a region with unified limits would answer

    def delete(self, region: RegionRef, image_id: str) -> bool:
        return self.inner.delete(region, image_id)

    def download(self, region: RegionRef, image: Image) -> ImageData:
        return self.inner.download(region, image)


class SteeredSync(GlanceSync):
    """The real engine; its syncs can be held at the start by the test."""

    def __init__(self, switch: EngineSwitch):
        super().__init__(switch.config, switch.facade)
        self.switch = switch

    def sync(self, region: RegionRef, dry_run: bool = False, fresh: bool = False) -> RegionFigures:
        self.switch.synced.append(region.fullname)
        self.switch.sync_started.set()
        if not self.switch.gate.wait(WAIT):
            raise RuntimeError("the test never released the sync")
        return super().sync(region, dry_run, fresh)


class EngineSwitch:
    """The application's ENGINE_FACTORY in the tests: the example scenario in memory."""

    def __init__(self) -> None:
        self.store = example_store()
        self.config = load_config({"GLANCESYNC_CONFIG": str(EXAMPLES / "glancesync.conf")})
        self.faults: dict[str, BaseException] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.sync_started = threading.Event()
        self.synced: list[str] = []
        self.broken: BaseException | None = None
        self.limits: dict[str, Any] | None = None  # the regions' quota usage (None: none)

    def facade(self, target: TargetConfig) -> Facade:
        return FaultyFacade(MockFacade(self.store, target), self)

    def __call__(self) -> GlanceSync:
        if self.broken is not None:
            raise self.broken
        return SteeredSync(self)

    def hold(self) -> None:
        self.gate.clear()
        self.sync_started.clear()

    def release(self) -> None:
        self.gate.set()

    def engine(self) -> GlanceSync:
        """An engine without steering, to compare the API with."""
        return GlanceSync(self.config, lambda target: MockFacade(self.store, target))


def make_app(
    settings: Settings, verifier: TokenVerifier, engines: Any, upgrade: bool = True, **config: Any
) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "GLANCESYNC_SETTINGS": settings,
            "TOKEN_VERIFIER": verifier,
            "ENGINE_FACTORY": engines,
            **config,
        },
        environ={},
    )
    if upgrade:
        with app.app_context():
            flask_migrate.upgrade()
    return app


def wait_for_task(client: Any, region: str, task_id: str) -> dict[str, Any]:
    """Let the runner finish, then read the task."""
    client.application.extensions["glancesync"].runner.wait(WAIT)
    response = client.get(f"/regions/{region}/tasks/{task_id}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()
