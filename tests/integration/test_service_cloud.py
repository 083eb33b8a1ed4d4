"""The REST service under gunicorn (3 workers) against the real test cloud.

Real tokens from Keystone A, real Glances: status, a sync that uploads, task polling and
deletion, a failing sync, 20 simultaneous POSTs, a worker SIGKILLed mid-sync, and the
SQLite file checked after all of it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from service_support import WAIT, LiveService, alive, owner_pid
from sync_cloud_support import md5, payload


@pytest.fixture(scope="module")
def service(cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = LiveService(cloud, tmp_path_factory.mktemp("service")).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def admin(service: LiveService) -> str:
    return service.token()


@pytest.fixture
def fresh(service: LiveService, faulty_cloud) -> Iterator[LiveService]:
    """Empty regions, no fault, and no sync left running after the test."""
    service.wait_idle()
    faulty_cloud.purge_images()
    yield service
    faulty_cloud.reset_faults()
    service.wait_idle()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_the_version_document(service: LiveService) -> None:
    response = requests.get(service.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "SUPPORTED"


def test_real_tokens(service: LiveService, admin: str) -> None:
    assert service.call("GET", "/regions/RegionA", admin).status_code == 200
    for user in ("user2", "member1"):  # members without the admin role
        response = service.call("GET", "/regions/RegionA", service.token(user))
        assert response.status_code == 403
        assert response.json() == {"error": {"message": "Role is not admin", "code": 403}}
    other_keystone = service.token(keystone="B")
    for token in (None, "not-a-token", other_keystone):
        response = service.call("GET", "/regions/RegionA", token)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "Unauthorized"


def test_a_revoked_token_is_refused(service: LiveService) -> None:
    token = service.token()  # never shown to the service before: not in its cache
    revoked = requests.delete(
        f"{service.cloud.keystones['A'].auth_url}/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
        timeout=30,
    )
    assert revoked.status_code == 204
    response = service.call("GET", "/regions/RegionA", token)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Unauthorized"


def test_status_of_a_region(fresh: LiveService, admin: str) -> None:
    name = unique("status")
    fresh.sync.add_image("Master", name, payload(name))
    response = fresh.call("GET", "/regions/RegionA", admin)
    assert response.status_code == 200
    assert response.json() == {
        "images": [{"id": None, "name": name, "status": "pending_upload", "message": None}]
    }
    assert fresh.call("GET", f"/regions/RegionA?image={name}", admin).json()["images"]
    assert fresh.call("GET", "/regions/RegionA?image=other", admin).json() == {"images": []}
    assert fresh.call("GET", "/regions/Nowhere", admin).status_code == 410


def test_a_sync_uploads_and_its_task_can_be_followed_and_deleted(
    fresh: LiveService, admin: str
) -> None:
    name = unique("synced")
    data = payload(name, 2 * 1024 * 1024)
    fresh.sync.add_image("Master", name, data)
    response = fresh.call("POST", "/regions/RegionA", admin)
    assert response.status_code == 200
    started = response.json()
    assert started["status"] == "syncing"
    task = fresh.wait_task("RegionA", started["taskId"], admin)
    assert task["status"] == "synced", task
    assert task["requestedBy"] == "admin"
    uploaded = fresh.sync.one("RegionA", name)
    assert (uploaded["status"], uploaded["checksum"]) == ("active", md5(data))
    [status] = fresh.call("GET", "/regions/RegionA", admin).json()["images"]
    assert (status["status"], status["id"]) == ("ok", uploaded["id"])
    path = f"/regions/RegionA/tasks/{started['taskId']}"
    assert (
        fresh.call("GET", f"/regions/RegionB/tasks/{started['taskId']}", admin).status_code == 404
    )
    deleted = fresh.call("DELETE", path, admin)
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert fresh.call("GET", path, admin).status_code == 404


def test_a_region_of_another_target(fresh: LiveService, admin: str) -> None:
    name = unique("other")
    fresh.sync.add_image("Master", name, payload(name))
    task_id = fresh.call("POST", "/regions/other:RegionC", admin).json()["taskId"]
    assert fresh.wait_task("other:RegionC", task_id, admin)["status"] == "synced"
    assert fresh.sync.one("RegionC", name)["status"] == "active"


def test_a_failing_sync_ends_failed_with_its_message(fresh: LiveService, admin: str) -> None:
    name = unique("corrupt")
    good, bad = payload(name, 1024 * 1024), payload("other bytes", 1024 * 1024)
    master = fresh.sync.add_image("Master", name, good)
    path = fresh.sync.write_image_file(master["id"], bad)  # images_dir has the wrong data
    # RegionC is in another Keystone: it cannot glance-download, so the file is sent.
    try:
        task_id = fresh.call("POST", "/regions/other:RegionC", admin).json()["taskId"]
        task = fresh.wait_task("other:RegionC", task_id, admin)
    finally:
        path.unlink()
    assert task["status"] == "failed"
    assert "checksum" in task["message"]
    assert fresh.sync.named("RegionC", name) == []  # nothing half-made left behind


def test_an_unreachable_glance_is_503_and_fails_the_sync(fresh: LiveService, admin: str) -> None:
    fresh.sync.add_image("Master", unique("down"), payload("down"))
    fresh.cloud.kill_glance("RegionA")
    response = fresh.call("GET", "/regions/RegionA", admin)
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "Service unavailable"
    task_id = fresh.call("POST", "/regions/RegionA", admin).json()["taskId"]
    task = fresh.wait_task("RegionA", task_id, admin)
    assert task["status"] == "failed" and task["message"]


def test_a_target_whose_keystone_is_down_fails_alone(fresh: LiveService, admin: str) -> None:
    name = unique("alone")
    fresh.sync.add_image("Master", name, payload(name))
    fresh.cloud.stop_keystone("B")
    # The service may hold a token of Keystone B from an earlier test, and RegionC's Glance
    # may have it in its validation cache: a restart empties that cache, so the token can
    # no longer be checked and the target is really cut off.
    fresh.cloud.restart_glance("RegionC")
    down = fresh.call("GET", "/regions/other:RegionC", admin)
    assert down.status_code == 503
    assert down.json()["error"]["message"] == "Service unavailable"
    status = fresh.call("GET", "/regions/RegionA", admin)
    assert status.status_code == 200
    assert [image["name"] for image in status.json()["images"]] == [name]
    task_id = fresh.call("POST", "/regions/RegionA", admin).json()["taskId"]
    assert fresh.wait_task("RegionA", task_id, admin)["status"] == "synced"
    assert fresh.sync.one("RegionA", name)["status"] == "active"


def test_twenty_simultaneous_posts_start_exactly_one_sync(fresh: LiveService, admin: str) -> None:
    name = unique("crowd")
    fresh.sync.add_image("Master", name, payload(name))
    barrier = threading.Barrier(20)
    answers: list[requests.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(fresh.call("POST", "/regions/RegionB", admin))

    # While RegionB's Glance hangs, the one sync cannot finish before every POST is in.
    with fresh.cloud.glance_hanging("RegionB"):
        threads = [threading.Thread(target=post) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [answer.status_code for answer in answers] == [200] * 20
        task_ids = {answer.json()["taskId"] for answer in answers}
        assert len(task_ids) == 1
        assert {answer.json()["status"] for answer in answers} == {"syncing"}
        [task_id] = task_ids
        owners = fresh.db_rows("SELECT DISTINCT owner FROM task WHERE region = 'RegionB'")
    assert len(owners) == 1
    assert fresh.db_rows("SELECT count(*) FROM task WHERE region = 'RegionB'")[0][0] == 1
    fresh.wait_task("RegionB", task_id, admin)
    started = fresh.log_text().count(f"Task {task_id}: sync of region RegionB started")
    assert started == 1
    assert fresh.log_text().count("sync of region RegionB started") == 1
    # The region is free again: the next sync really uploads.
    task_id = fresh.call("POST", "/regions/RegionB", admin).json()["taskId"]
    assert fresh.wait_task("RegionB", task_id, admin)["status"] == "synced"
    assert fresh.sync.one("RegionB", name)["status"] == "active"


def test_a_worker_killed_mid_sync_fails_its_task_and_frees_the_region(
    fresh: LiveService, admin: str
) -> None:
    name = unique("killed")
    fresh.sync.add_image("Master", name, payload(name))
    with fresh.cloud.glance_hanging("RegionB"):
        task_id = fresh.call("POST", "/regions/RegionB", admin).json()["taskId"]
        [(owner,)] = fresh.db_rows("SELECT owner FROM task WHERE id = ?", task_id)
        worker = owner_pid(owner)
        assert worker in fresh.worker_pids()
        os.kill(worker, signal.SIGKILL)
        task = fresh.wait_task("RegionB", task_id, admin)
        assert task["status"] == "failed"
        assert "interrupted" in task["message"]
        assert not alive(worker) or worker not in fresh.worker_pids()
    _wait_for_workers(fresh, 3)
    again = fresh.call("POST", "/regions/RegionB", admin).json()
    assert again["taskId"] != task_id
    assert fresh.wait_task("RegionB", again["taskId"], admin)["status"] == "synced"
    assert fresh.sync.one("RegionB", name)["status"] == "active"


def _wait_for_workers(service: LiveService, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while len(service.worker_pids()) < count:
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.2)


def test_the_database_is_never_corrupted(service: LiveService) -> None:
    service.wait_idle()
    assert service.integrity() == "ok"
    statuses = {row[0] for row in service.db_rows("SELECT DISTINCT status FROM task")}
    assert statuses <= {"synced", "failed"}


def test_the_log_holds_no_token_or_password(service: LiveService, admin: str) -> None:
    text = service.log_text() + service.output_text()
    assert admin not in text
    assert service.cloud.keystones["A"].admin_password not in text
    assert Path(service.log).exists()


def test_the_status_report_and_page_with_real_tokens(fresh: LiveService, admin: str) -> None:
    name = unique("matrix")
    fresh.sync.add_image("Master", name, payload(name))
    assert fresh.call("GET", "/status.json", None).status_code == 401
    report = fresh.call("GET", "/status.json", admin)
    assert report.status_code == 200
    regions = {region["region"]: region for region in report.json()["regions"]}
    assert set(regions) == {"RegionA", "RegionB", "other:RegionC"}
    for region in regions.values():
        assert region["ok"] is True
        assert [(i["name"], i["status"]) for i in region["images"]] == [(name, "pending_upload")]
    page = fresh.call("GET", "/status", admin)
    assert (page.status_code, page.headers["Content-Type"].split(";")[0]) == (200, "text/html")
    assert f'data-name="{name}"' in page.text and "pending_upload" in page.text


def test_a_region_that_fails_shows_which_service_without_urls(
    fresh: LiveService, admin: str
) -> None:
    fresh.cloud.kill_glance("RegionB")
    regions = {r["region"]: r for r in fresh.call("GET", "/status.json", admin).json()["regions"]}
    assert regions["RegionB"]["ok"] is False
    assert (
        regions["RegionB"]["error"] == "the image service (Glance) of region RegionB is unavailable"
    )
    assert "127.0.0.1" not in str(regions) and regions["RegionA"]["ok"] is True


def test_metrics_add_up_the_workers(service: LiveService, admin: str) -> None:
    def total() -> float:
        text = requests.get(f"{service.url}/metrics", timeout=30).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "glancesync_http_requests_total"
            and sample.labels == {"endpoint": "/regions/<region>", "method": "GET", "code": "200"}
        )

    before = total()
    for _ in range(30):  # spread over the three workers by the kernel
        assert service.call("GET", "/regions/RegionA", admin).status_code == 200
    scrapes = [total() for _ in range(6)]
    # Whichever worker answers the scrape, it reports every worker's requests.
    assert scrapes == [before + 30] * 6


def test_the_served_page_in_a_browser(
    fresh: LiveService, admin: str, browser, artifacts, tmp_path
) -> None:
    from selenium.webdriver.common.by import By

    names = [unique("page-a"), unique("page-b")]
    for name in names:
        fresh.sync.add_image("Master", name, payload(name))
    fresh.sync.add_image("RegionA", names[0], payload(names[0]))  # already there: ok
    # The page needs a token, which a browser cannot add to a plain visit: fetch it as
    # a portal would, and show what the service answered.
    page = tmp_path / "served.html"
    page.write_text(fresh.call("GET", "/status", admin).text, encoding="utf-8")
    browser.get(page.as_uri())
    rows = {
        row.get_attribute("data-name"): [
            cell.get_attribute("data-status") for cell in row.find_elements(By.TAG_NAME, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr")
    }
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.matrix th.region")]
    assert sorted(headers) == ["RegionA", "RegionB", "other:RegionC"]
    a = headers.index("RegionA")
    assert rows[names[0]][a] == "ok" and rows[names[1]][a] == "pending_upload"
    counts = browser.find_element(By.CSS_SELECTOR, 'table.counts tr[data-region="RegionA"]')
    assert counts.find_element(By.CSS_SELECTOR, 'td[data-status="ok"]').text == "1"
    browser.save_screenshot(str(artifacts / "status-page-served.png"))
