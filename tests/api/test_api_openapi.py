"""The OpenAPI document is true: it lists exactly the routes, and every answer matches it.

The property-based part (schemathesis) runs in-process against the application on the
mock cloud; ``tests/integration/test_service_schema.py`` runs the same against the live
gunicorn server and the real cloud.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from api_support import ADMIN, EngineSwitch, make_app, tokens
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import checks

import fiwareglancesync.app
from fiwareglancesync.app.auth import StaticVerifier
from fiwareglancesync.app.extensions import db
from fiwareglancesync.app.settings import Settings

OPENAPI = Path(fiwareglancesync.app.__file__).with_name("openapi.yaml")
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
SEEN: set[tuple[str, str, int]] = set()  # (method, path, status) answered to the fuzzer
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def document_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    directory = tmp_path_factory.mktemp("openapi")
    verifier = StaticVerifier(
        tokens(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)), service_project="project-id"
    )
    app = make_app(Settings(database_uri=f"sqlite:///{directory}/api.db"), verifier, EngineSwitch())
    yield app
    app.extensions["glancesync"].runner.wait(30)
    with app.app_context():
        db.engine.dispose()


def documented_operations() -> set[tuple[str, str]]:
    document = yaml.safe_load(OPENAPI.read_text())
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_document_lists_exactly_the_routes(document_app: Flask) -> None:
    served = set()
    for rule in document_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<task_id>", "{taskId}").replace("<", "{").replace(">", "}")
        served |= {
            (method, path) for method in rule.methods or () if method in {"GET", "POST", "DELETE"}
        }
    assert served == documented_operations()


def test_the_document_is_valid_openapi() -> None:
    SCHEMA.validate()


def test_every_documented_error_uses_the_error_shape() -> None:
    document = yaml.safe_load(OPENAPI.read_text())
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, name


@SCHEMA.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_answers_match_the_document(case: schemathesis.Case, document_app: Flask) -> None:
    response = case.call_and_validate(app=document_app, headers=ADMIN, checks=CHECKS)
    SEEN.add((case.method.upper(), case.operation.path, response.status_code))


def test_the_examples_reached_real_answers() -> None:
    """Not only 410s: the documented examples name regions the mock cloud has."""
    assert ("GET", "/regions/{region}", 200) in SEEN
    assert ("POST", "/regions/{region}", 200) in SEEN
    assert ("GET", "/", 200) in SEEN


@SCHEMA.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_answers_without_a_token_match_the_document(
    case: schemathesis.Case, document_app: Flask
) -> None:
    response = case.call_and_validate(app=document_app, checks=CHECKS)
    # Schemathesis also probes methods the path does not have (405): leave those out.
    open_to_all = case.operation.path in ("/", "/metrics")
    if not open_to_all and case.method.upper() == case.operation.method.upper():
        assert response.status_code == 401
