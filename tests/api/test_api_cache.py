"""A worker reuses its facades and lists the master at most once per MASTER_CACHE_SECONDS.

The service's own engine factory (not a test double): each request gets an engine, and
the engines of a worker share one CloudCache.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pytest
from api_support import ADMIN, EXAMPLES, tokens

from fiwareglancesync.app import create_app
from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.settings import Settings
from fiwareglancesync.facades.mock_facade import MockFacade
from fiwareglancesync.mock import main as load

V2_SCENARIO = Path(__file__).parents[1] / "scenarios" / "glance_v2_fields"
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


@pytest.fixture
def master_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = MockFacade.list_images

    def counting(self, region):
        seen.append(region.fullname)
        return real(self, region)

    monkeypatch.setattr(MockFacade, "list_images", counting)
    return seen


def client_for(tmp_path: Path, master_cache_seconds: float, scenario: Path = EXAMPLES):
    store = tmp_path / "store"
    assert load(["--path", str(store), str(scenario / "scenario")]) == 0
    settings = Settings(
        database_uri=f"sqlite:///{tmp_path}/db.sqlite", master_cache_seconds=master_cache_seconds
    )
    app = create_app(
        {
            "GLANCESYNC_SETTINGS": settings,
            "TOKEN_VERIFIER": StaticVerifier(tokens(LATER), service_project="project-id"),
        },
        environ={
            "GLANCESYNC_CONFIG": str(scenario / "glancesync.conf"),
            "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
        },
    )
    return app.test_client()


def test_the_master_is_listed_once_within_the_cache_time(tmp_path, master_listings) -> None:
    client = client_for(tmp_path, 60)
    ages = []
    for region in ("Burgos", "Leon", "Burgos", "other:Madrid"):
        response = client.get(f"/regions/{region}", headers=ADMIN)
        assert response.status_code == 200
        ages.append(float(response.headers["X-GlanceSync-Master-Age"]))
    assert master_listings.count("Valladolid") == 1
    assert ages == sorted(ages)  # the same listing, older at every request


def test_zero_lists_the_master_for_every_request(tmp_path, master_listings) -> None:
    client = client_for(tmp_path, 0)
    for _ in range(3):
        assert client.get("/regions/Burgos", headers=ADMIN).status_code == 200
    assert master_listings.count("Valladolid") == 3


def test_member_projects_are_looked_up_once_per_master_listing(tmp_path, monkeypatch) -> None:
    # The v2-fields scenario: shared master images, targets with a members option.
    scenario = tmp_path / "v2"
    shutil.copytree(V2_SCENARIO / "before", scenario / "scenario")
    shutil.copy(V2_SCENARIO / "glancesync.conf", scenario / "glancesync.conf")
    lookups: list[tuple[str, ...]] = []
    real = MockFacade.project_ids_by_name

    def counting(self, names):
        lookups.append(tuple(sorted(names)))
        return real(self, names)

    monkeypatch.setattr(MockFacade, "project_ids_by_name", counting)
    client = client_for(tmp_path, 60, scenario)
    for _ in range(3):
        assert client.get("/regions/Paris", headers=ADMIN).status_code == 200
    assert lookups == [("proj-a", "proj-b")]


def test_the_facades_live_as_long_as_the_worker(tmp_path, monkeypatch) -> None:
    made = []
    real = MockFacade.__init__

    def counting(self, *args, **kwargs):
        made.append(args[1].name)
        real(self, *args, **kwargs)

    monkeypatch.setattr(MockFacade, "__init__", counting)
    client = client_for(tmp_path, 0)
    for region in ("Burgos", "Leon", "other:Madrid", "Burgos"):
        assert client.get(f"/regions/{region}", headers=ADMIN).status_code == 200
    assert sorted(made) == ["master", "other"]  # one per target, not one per request


def test_settings_refuse_a_negative_cache_time(tmp_path) -> None:
    from fiwareglancesync.app.settings import SettingsError, load_settings

    path = tmp_path / "s.cfg"
    path.write_text("[glancesync]\nMASTER_CACHE_SECONDS = -1\n")
    with pytest.raises(SettingsError, match="MASTER_CACHE_SECONDS must be zero or more"):
        load_settings(
            {"GLANCESYNC_SETTINGS_FILE": str(path), "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path)}
        )
    assert dataclasses.fields(Settings)  # the setting exists with its default
    assert Settings().master_cache_seconds == 2.0


def test_a_sync_lists_the_master_itself(tmp_path, master_listings) -> None:
    from api_support import wait_for_task

    client = client_for(tmp_path, 60)
    with client.application.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    assert client.get("/regions/Leon", headers=ADMIN).status_code == 200
    task = client.post("/regions/Leon", headers=ADMIN).get_json()["taskId"]
    assert wait_for_task(client, "Leon", task)["status"] == "synced"
    assert master_listings.count("Valladolid") == 2  # the status's, then the sync's own
