"""``GET /metrics``: requests, latency, tasks by state and sync durations, as Prometheus
reads them (parsed with prometheus_client's own parser)."""

from __future__ import annotations

from api_support import ADMIN, wait_for_task
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_endpoint_method_and_code(client: FlaskClient) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get("/regions/Burgos", headers=ADMIN).status_code == 200
    assert client.get("/regions/Nowhere", headers=ADMIN).status_code == 410
    assert client.get("/regions/Burgos").status_code == 401
    after = scrape(client)
    endpoint = "/regions/<region>"
    for code, added in (("200", 3), ("410", 1), ("401", 1)):
        key = dict(endpoint=endpoint, method="GET", code=code)
        assert (
            value(after, "glancesync_http_requests_total", **key)
            - value(before, "glancesync_http_requests_total", **key)
            == added
        )
    latency = value(
        after, "glancesync_http_request_duration_seconds_count", endpoint=endpoint, method="GET"
    )
    assert (
        latency
        - value(
            before,
            "glancesync_http_request_duration_seconds_count",
            endpoint=endpoint,
            method="GET",
        )
        == 5
    )


def test_tasks_by_state_and_sync_durations(client: FlaskClient) -> None:
    task = client.post("/regions/Leon", headers=ADMIN).get_json()["taskId"]
    assert wait_for_task(client, "Leon", task)["status"] == "synced"
    found = scrape(client)
    assert value(found, "glancesync_tasks", state="synced") >= 1
    assert value(found, "glancesync_tasks", state="syncing") == 0
    assert (
        value(found, "glancesync_sync_duration_seconds_count", region="Leon", outcome="synced") == 1
    )
    assert value(found, "glancesync_sync_duration_seconds_sum", region="Leon", outcome="synced") > 0


def test_metrics_need_no_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200


def test_invented_methods_and_paths_do_not_grow_the_metrics(client: FlaskClient) -> None:
    client.get("/metrics")  # the first scrape's own line is then counted
    before = len(client.get("/metrics").data)
    for n in range(300):
        client.open(f"/no/such/path/{n}", method=f"INVENTED{n}")
        client.open(f"/regions/R{n}", method=f"X{n}")
    body = client.get("/metrics").data.decode()
    assert "INVENTED" not in body and "/no/such/path" not in body
    assert 'method="other"' in body
    # The few new label sets (other method, 404 and 405 codes), not 600 new lines.
    assert len(body) < before + 20_000
    print(f"/metrics: {before} bytes before, {len(body)} after 600 invented requests")
