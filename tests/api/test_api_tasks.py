"""The task lifecycle: POST starts a background sync, GET follows it, DELETE forgets it."""

from __future__ import annotations

import uuid

import pytest
from api_support import ADMIN, WAIT, EngineSwitch, wait_for_task
from flask import Flask
from flask.testing import FlaskClient

from fiwareglancesync.app.models import Task
from fiwareglancesync.errors import RegionError


def start(client: FlaskClient, region: str = "Leon") -> str:
    response = client.post(f"/regions/{region}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body == {"taskId": body["taskId"], "status": "syncing"}
    return body["taskId"]


def test_a_sync_runs_in_the_background_and_ends_synced(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    task_id = start(client)
    assert uuid.UUID(task_id).version == 4
    task = wait_for_task(client, "Leon", task_id)
    assert task["taskId"] == task_id
    assert task["status"] == "synced"
    assert task["region"] == "Leon"
    assert task["message"] is None
    assert task["requestedBy"] == "alice"
    assert task["created"] <= task["updated"]
    assert engines.synced == ["Leon"]
    statuses = {image["status"] for image in engines_statuses(client, "Leon")}
    assert statuses == {"ok"}


def engines_statuses(client: FlaskClient, region: str) -> list[dict]:
    return client.get(f"/regions/{region}", headers=ADMIN).get_json()["images"]


def test_the_task_is_syncing_while_the_sync_runs(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    engines.hold()
    task_id = start(client)
    assert engines.sync_started.wait(WAIT)
    response = client.get(f"/regions/Leon/tasks/{task_id}", headers=ADMIN)
    assert response.get_json()["status"] == "syncing"
    engines.release()
    assert wait_for_task(client, "Leon", task_id)["status"] == "synced"


def test_a_second_post_while_syncing_answers_the_running_task(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    engines.hold()
    first = start(client)
    assert engines.sync_started.wait(WAIT)
    assert start(client) == first
    assert start(client, "master:Leon") == first
    other = start(client, "Burgos")  # another region is not blocked
    assert other != first
    engines.release()
    wait_for_task(client, "Leon", first)
    assert sorted(engines.synced) == ["Burgos", "Leon"]


def test_a_finished_task_does_not_block_a_new_sync(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    first = start(client)
    wait_for_task(client, "Leon", first)
    second = start(client)
    assert second != first
    assert wait_for_task(client, "Leon", second)["status"] == "synced"
    assert engines.synced == ["Leon", "Leon"]


def test_a_failing_sync_ends_failed_with_its_message(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    engines.faults["upload"] = RegionError("Leon: the image store is full")
    task = wait_for_task(client, "Leon", start(client))
    assert task["status"] == "failed"
    assert "the image store is full" in task["message"]


def test_images_refused_before_the_transfer_fail_the_task_and_are_named(
    client: FlaskClient, engines: EngineSwitch
) -> None:
    # A region whose project has 1 MB of image quota left: every upload is refused by
    # the pre-flight check, before anything is created; the metadata updates still run.
    engines.limits = {"image_size_total": {"usage": 0, "limit": 1}}
    pending = {i["name"] for i in engines_statuses(client, "Leon") if i["status"] != "ok"}
    task = wait_for_task(client, "Leon", start(client))
    assert task["status"] == "failed"
    assert "refused before the transfer" in task["message"]
    after = {i["name"]: i["status"] for i in engines_statuses(client, "Leon")}
    refused = {name for name, status in after.items() if status == "pending_upload"}
    assert refused and refused <= pending
    assert all(name in task["message"] for name in refused)


def test_an_unexpected_error_also_ends_failed(client: FlaskClient, engines: EngineSwitch) -> None:
    engines.faults["upload"] = KeyError("surprise")
    task = wait_for_task(client, "Leon", start(client))
    assert task["status"] == "failed"
    assert "surprise" in task["message"]


def test_a_failed_region_can_be_synced_again(client: FlaskClient, engines: EngineSwitch) -> None:
    engines.faults["upload"] = RegionError("temporarily broken")
    wait_for_task(client, "Leon", start(client))
    del engines.faults["upload"]
    assert wait_for_task(client, "Leon", start(client))["status"] == "synced"


def test_delete_forgets_a_finished_task(client: FlaskClient) -> None:
    task_id = start(client)
    wait_for_task(client, "Leon", task_id)
    response = client.delete(f"/regions/Leon/tasks/{task_id}", headers=ADMIN)
    assert response.status_code == 200
    assert (response.get_json(), response.mimetype) == ({}, "application/json")
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/regions/Leon/tasks/{task_id}", headers=ADMIN)
        assert response.status_code == 404


def test_delete_of_a_syncing_task_is_409(client: FlaskClient, engines: EngineSwitch) -> None:
    engines.hold()
    task_id = start(client)
    response = client.delete(f"/regions/Leon/tasks/{task_id}", headers=ADMIN)
    assert response.status_code == 409
    assert response.get_json() == {"error": {"message": "Task is still syncing", "code": 409}}
    engines.release()
    wait_for_task(client, "Leon", task_id)
    assert client.delete(f"/regions/Leon/tasks/{task_id}", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_task_under_another_region_is_404(client: FlaskClient, method: str) -> None:
    task_id = start(client)
    wait_for_task(client, "Leon", task_id)
    response = getattr(client, method)(f"/regions/Burgos/tasks/{task_id}", headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "Item not found"


def test_a_task_is_found_under_any_spelling_of_its_region(client: FlaskClient) -> None:
    task_id = start(client)
    wait_for_task(client, "Leon", task_id)
    response = client.get(f"/regions/master:Leon/tasks/{task_id}", headers=ADMIN)
    assert response.get_json()["taskId"] == task_id


def test_the_record_keeps_who_asked_and_when(app: Flask, client: FlaskClient) -> None:
    task_id = start(client, "other:Madrid")
    wait_for_task(client, "other:Madrid", task_id)
    with app.app_context():
        from fiwareglancesync.app.extensions import db

        task = db.session.get(Task, task_id)
        assert task is not None
        assert (task.region, task.status) == ("other:Madrid", "synced")
        assert (task.requested_by, task.requested_by_id) == ("alice", "alice-id")
        assert task.created_at <= task.updated_at
        assert task.lease_expires_at is None
