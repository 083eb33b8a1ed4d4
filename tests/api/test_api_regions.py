"""``GET /regions/{region}``: the sync statuses of ``--show-status``, as JSON."""

from __future__ import annotations

import pytest
from api_support import ADMIN, EngineSwitch
from flask.testing import FlaskClient

from fiwareglancesync.plan import STATUSES
from fiwareglancesync.region import RegionRef


@pytest.mark.parametrize("region", ["Burgos", "Leon", "other:Madrid"])
def test_statuses_are_those_of_show_status_in_the_same_order(
    client: FlaskClient, engines: EngineSwitch, region: str
) -> None:
    expected = engines.engine().status(RegionRef.parse(region)).images
    response = client.get(f"/regions/{region}", headers=ADMIN)
    assert response.status_code == 200
    images = response.get_json()["images"]
    assert [(image["name"], image["status"]) for image in images] == [
        (entry.name, entry.status) for entry in expected
    ]
    assert [image["id"] for image in images] == [
        entry.regional.id if entry.regional else None for entry in expected
    ]
    for image in images:
        assert set(image) == {"id", "name", "status", "message"}
        assert image["status"] in STATUSES


def test_burgos_shows_ids_statuses_and_messages(client: FlaskClient) -> None:
    images = client.get("/regions/Burgos", headers=ADMIN).get_json()["images"]
    by_name = {image["name"]: image for image in images}
    assert by_name["cirros_kernel"] == {
        "id": None,
        "name": "cirros_kernel",
        "status": "pending_upload",
        "message": None,
    }
    assert by_name["base_ubuntu_22.04"]["id"] == "b-ubuntu"
    assert by_name["base_ubuntu_22.04"]["status"] == "ok"
    assert by_name["base_centos_9"]["status"] == "pending_metadata"
    assert by_name["cirros_ami"]["status"] == "pending_ami"


def test_an_error_status_explains_itself(client: FlaskClient) -> None:
    response = client.get("/regions/Burgos?image=tools_image", headers=ADMIN)
    [image] = response.get_json()["images"]
    assert image["status"] == "error_checksum"
    assert image["id"] == "b-tools"
    assert "498e0d81f82a4d5fa83a57dd485855e9" in image["message"]


def test_image_parameter_narrows_to_that_name(client: FlaskClient) -> None:
    response = client.get("/regions/Burgos?image=cirros_ami", headers=ADMIN)
    assert [image["name"] for image in response.get_json()["images"]] == ["cirros_ami"]


@pytest.mark.parametrize("name", ["no_such_image", "", "CIRROS_AMI"])
def test_image_parameter_of_an_unknown_name_gives_an_empty_list(
    client: FlaskClient, name: str
) -> None:
    response = client.get(f"/regions/Burgos?image={name}", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {"images": []}


def test_master_prefix_names_the_same_region(client: FlaskClient) -> None:
    plain = client.get("/regions/Leon", headers=ADMIN).get_json()
    prefixed = client.get("/regions/master:Leon", headers=ADMIN).get_json()
    assert plain == prefixed


def test_status_changes_nothing(client: FlaskClient, engines: EngineSwitch) -> None:
    before = {region: engines.store.read(region) for region in engines.store.region_names()}
    client.get("/regions/Burgos", headers=ADMIN)
    after = {region: engines.store.read(region) for region in engines.store.region_names()}
    assert before == after
    assert engines.synced == []
