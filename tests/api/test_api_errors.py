"""The version document and every error row of the spec, in the one JSON error shape."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from api_support import ADMIN, MEMBER, EngineSwitch, make_app
from flask.testing import FlaskClient

from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.settings import Settings
from fiwareglancesync.errors import FacadeError, RegionError

ENDPOINTS = [
    ("get", "/regions/Burgos"),
    ("post", "/regions/Burgos"),
    ("get", "/regions/Burgos/tasks/0b0e7f9c-2a4e-4c55-9d0c-6d1b2f1f3a11"),
    ("delete", "/regions/Burgos/tasks/0b0e7f9c-2a4e-4c55-9d0c-6d1b2f1f3a11"),
]


def assert_error(response, code: int, message: str) -> None:
    assert response.status_code == code
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"] == message
    assert set(body["error"]) <= {"code", "message", "description"}


def test_version_document_needs_no_token(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["id", "owner", "status", "version", "updated", "runningfrom", "href"]
    assert body["id"] == f"v{body['version']}"
    assert body["status"] == "SUPPORTED"
    started = dt.datetime.fromisoformat(body["runningfrom"].replace("Z", "+00:00"))
    assert started <= dt.datetime.now(dt.UTC)


def test_version_document_comes_from_the_settings(
    sqlite_url: str, verifier: StaticVerifier, engines: EngineSwitch
) -> None:
    settings = Settings(
        database_uri=sqlite_url,
        owner="Example Lab",
        version="9.1",
        updated="2030-02-03",
        status="DEPRECATED",
        api_info_url="http://docs.example/api",
    )
    body = make_app(settings, verifier, engines).test_client().get("/").get_json()
    assert body["id"] == "v9.1"
    assert (body["owner"], body["updated"], body["status"]) == (
        "Example Lab",
        "2030-02-03",
        "DEPRECATED",
    )
    assert body["href"] == "http://docs.example/api"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_401(client: FlaskClient, method: str, path: str) -> None:
    assert_error(getattr(client, method)(path), 401, "Unauthorized")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_rejected_token_is_401(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path, headers={"X-Auth-Token": "expired-or-revoked"})
    assert_error(response, 401, "Unauthorized")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_token_without_the_role_is_403(client: FlaskClient, method: str, path: str) -> None:
    assert_error(getattr(client, method)(path, headers=MEMBER), 403, "Role is not admin")


def test_the_required_role_is_a_setting(
    sqlite_url: str, verifier: StaticVerifier, engines: EngineSwitch
) -> None:
    settings = Settings(database_uri=sqlite_url, role="glancesync_operator")
    client = make_app(settings, verifier, engines).test_client()
    assert_error(
        client.get("/regions/Burgos", headers=ADMIN), 403, "Role is not glancesync_operator"
    )
    response = client.get("/regions/Burgos", headers={"X-Auth-Token": "operator-token"})
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_keystone_unreachable_is_503(
    client: FlaskClient, verifier: StaticVerifier, method: str, path: str
) -> None:
    verifier.unavailable = True
    assert_error(getattr(client, method)(path, headers=ADMIN), 503, "Service unavailable")


@pytest.mark.parametrize(
    "region", ["Nowhere", "nosuchtarget:Madrid", "a:b:c", "other:Burgos", "master:Nowhere"]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_region_is_410(client: FlaskClient, method: str, region: str) -> None:
    response = getattr(client, method)(f"/regions/{region}", headers=ADMIN)
    assert_error(response, 410, "Bad region")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_task_of_an_unknown_region_is_410(client: FlaskClient, method: str) -> None:
    response = getattr(client, method)("/regions/Nowhere/tasks/some-task", headers=ADMIN)
    assert_error(response, 410, "Bad region")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_task_is_404(client: FlaskClient, method: str) -> None:
    response = getattr(client, method)("/regions/Burgos/tasks/no-such-task", headers=ADMIN)
    assert_error(response, 404, "Item not found")


@pytest.mark.parametrize("path", ["/nothing", "/regions", "/regions/", "/regions/Burgos/tasks"])
def test_unknown_url_is_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path, headers=ADMIN), 404, "Item not found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/regions/Burgos", {"GET", "POST"}),
        ("delete", "/regions/Burgos", {"GET", "POST"}),
        ("post", "/", {"GET"}),
        ("put", "/regions/Burgos/tasks/x", {"GET", "DELETE"}),
        ("patch", "/regions/Burgos/tasks/x", {"GET", "DELETE"}),
    ],
)
def test_method_not_allowed_is_405(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    response = getattr(client, method)(path, headers=ADMIN)
    assert_error(response, 405, "Bad method")
    assert allowed <= {part.strip() for part in response.headers["Allow"].split(",")}


@pytest.mark.parametrize(
    "error",
    [
        RegionError("cannot list the images: Glance did not answer"),
        ConnectionError("connection refused"),
        TimeoutError("timed out"),
    ],
)
def test_glance_unreachable_is_503(
    client: FlaskClient, engines: EngineSwitch, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    engines.faults["list_images"] = error
    with caplog.at_level(logging.WARNING):
        response = client.get("/regions/Burgos", headers=ADMIN)
    assert_error(response, 503, "Service unavailable")
    # The caller learns that a service is unavailable; what went wrong goes to the log.
    assert str(error) not in response.get_data(as_text=True)
    assert response.get_json()["error"]["description"].endswith("is unavailable")
    assert any(str(error) in record.getMessage() for record in caplog.records)


def test_a_503_names_the_service_and_region_but_no_url(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    engines.faults["list_images"] = FacadeError(
        "listing the images: cannot connect (connection refused) to http://10.0.0.7:9292",
        service="Glance",
        region="Burgos",
    )
    response = client.get("/regions/Burgos", headers=ADMIN)
    assert_error(response, 503, "Service unavailable")
    description = response.get_json()["error"]["description"]
    assert description == "the image service (Glance) of region Burgos is unavailable"
    assert "http" not in response.get_data(as_text=True)


def test_catalogue_unreachable_is_503_for_a_sync(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    engines.faults["regions"] = ConnectionError("Keystone did not answer")
    assert_error(client.post("/regions/Burgos", headers=ADMIN), 503, "Service unavailable")


def test_a_bug_is_500_without_traceback(
    client: FlaskClient, engines: EngineSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    engines.broken = ZeroDivisionError("a bug deep inside")
    with caplog.at_level(logging.ERROR):
        response = client.get("/regions/Burgos", headers=ADMIN)
    assert_error(response, 500, "Unhandled exception")
    assert "Traceback" not in response.get_data(as_text=True)
    assert "deep inside" not in response.get_data(as_text=True)
    assert any(record.exc_info for record in caplog.records), "the traceback goes to the log"


def test_every_answer_is_json(client: FlaskClient) -> None:
    for method, path in [*ENDPOINTS, ("get", "/"), ("get", "/nothing"), ("put", "/")]:
        response = getattr(client, method)(path, headers=ADMIN)
        assert response.mimetype == "application/json", (method, path)


def test_an_unreachable_task_database_is_503(
    tmp_path: Path, verifier: StaticVerifier, engines: EngineSwitch
) -> None:
    settings = Settings(database_uri=f"sqlite:///{tmp_path}/no/such/dir/glancesyncapi.db")
    client = make_app(settings, verifier, engines, upgrade=False).test_client()
    assert_error(client.post("/regions/Burgos", headers=ADMIN), 503, "Service unavailable")


def test_runningfrom_is_when_the_server_started(
    sqlite_url: str, verifier: StaticVerifier, engines: EngineSwitch
) -> None:
    started = dt.datetime(2030, 5, 6, 7, 8, 9)
    app = make_app(Settings(database_uri=sqlite_url), verifier, engines, STARTED_AT=started)
    assert app.test_client().get("/").get_json()["runningfrom"] == "2030-05-06T07:08:09Z"


# --------------------------------------------------------------------------- JSON everywhere


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/", {"GET", "HEAD", "OPTIONS"}),
        ("/regions/Burgos", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("/regions/Burgos/tasks/x", {"DELETE", "GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_answers_json(client: FlaskClient, path: str, methods: set[str]) -> None:
    response = client.options(path)
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert set(response.get_json()["methods"]) == methods
    assert {m.strip() for m in response.headers["Allow"].split(",")} == methods


@pytest.mark.parametrize(
    "path",
    ["/regions/Burgos/", "//regions/Burgos", "/regions//Burgos", "/regions/Burgos/tasks/x/"],
)
def test_other_spellings_of_a_path_are_json_404s(client: FlaskClient, path: str) -> None:
    # The test client would read "//regions/..." as a host name: the path goes in as is.
    response = client.get("/", headers=ADMIN, environ_overrides={"PATH_INFO": path})
    assert_error(response, 404, "Item not found")


@pytest.mark.parametrize("region", ["Burgos%20", "%20Burgos", ":Burgos", "Burgos%0A"])
def test_region_names_are_matched_exactly(client: FlaskClient, region: str) -> None:
    assert_error(client.get(f"/regions/{region}", headers=ADMIN), 410, "Bad region")
    assert_error(client.post(f"/regions/{region}", headers=ADMIN), 410, "Bad region")


def test_the_status_says_how_old_the_master_listing_is(client: FlaskClient) -> None:
    response = client.get("/regions/Burgos", headers=ADMIN)
    assert response.status_code == 200
    assert float(response.headers["X-GlanceSync-Master-Age"]) >= 0
