"""Property-based tests of the live service from its OpenAPI document (schemathesis).

The document's region examples are pointed at the test cloud's regions, so generated
requests reach real statuses and real syncs, not only 410s. Every answer, with a valid
admin token and without one, must be documented and never a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks
from service_support import LiveService

import fiwareglancesync.app

OPENAPI = Path(fiwareglancesync.app.__file__).with_name("openapi.yaml")
CLOUD_REGIONS = {"master": "RegionA", "other": "other:RegionC"}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
SEEN: set[tuple[str, str, int]] = set()


def cloud_document() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI.read_text())
    examples = document["components"]["parameters"]["region"]["examples"]
    for key, region in CLOUD_REGIONS.items():
        examples[key]["value"] = region
    return document


SCHEMA = schemathesis.openapi.from_dict(cloud_document())


@pytest.fixture(scope="module")
def live(cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = LiveService(cloud, tmp_path_factory.mktemp("schema-service")).start()
    try:
        yield service
        service.wait_idle()  # the syncs it started must not outlive the module
    finally:
        service.stop()


@pytest.fixture(scope="module")
def token(live: LiveService) -> str:
    return live.token()


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_live_answers_match_the_document(
    case: schemathesis.Case, live: LiveService, token: str
) -> None:
    response = case.call_and_validate(
        base_url=live.url, headers={"X-Auth-Token": token}, checks=CHECKS, timeout=60
    )
    SEEN.add((case.method.upper(), case.operation.path, response.status_code))


@SCHEMA.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_live_answers_without_a_token_match_the_document(
    case: schemathesis.Case, live: LiveService
) -> None:
    case.call_and_validate(base_url=live.url, checks=CHECKS, timeout=60)


def test_the_fuzzer_reached_real_answers(live: LiveService) -> None:
    assert ("GET", "/regions/{region}", 200) in SEEN
    assert ("POST", "/regions/{region}", 200) in SEEN
    assert ("GET", "/regions/{region}", 410) in SEEN
    live.wait_idle()
    assert live.integrity() == "ok"
