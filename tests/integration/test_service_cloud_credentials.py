"""The service's own credential as an application credential from clouds.yaml.

The service (gunicorn, 3 workers) validates callers' tokens with an application
credential of Keystone A's admin, found in the clouds.yaml and secure.yaml of its working
directory (the first place openstackclient looks). Callers' tokens made from application
credentials are validated like any other. Revoking the service's credential turns
validation into a 503 that blames the service, not the caller.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from service_support import LiveService


def app_token(cloud, credential) -> str:
    auth = v3.ApplicationCredential(
        auth_url=cloud.keystones[credential.keystone].auth_url,
        application_credential_id=credential.id,
        application_credential_secret=credential.secret,
    )
    return str(ks_session.Session(auth=auth).get_token())


@pytest.fixture(scope="module")
def own_credential(cloud):
    return cloud.application_credential("gs-service")


@pytest.fixture(scope="module")
def service(cloud, own_credential, tmp_path_factory) -> Iterator[LiveService]:
    live = LiveService(cloud, tmp_path_factory.mktemp("service-ac"))
    keystone = cloud.keystones["A"]
    (live.workdir / "clouds.yaml").write_text(
        "clouds:\n  glancesync-service:\n    auth_type: v3applicationcredential\n"
        f"    auth:\n      auth_url: {keystone.auth_url}\n"
        f"      application_credential_id: {own_credential.id}\n"
    )
    (live.workdir / "secure.yaml").write_text(
        "clouds:\n  glancesync-service:\n    auth:\n"
        f"      application_credential_secret: {own_credential.secret}\n"
    )
    live.settings.write_text(
        "[openstack]\nCLOUD = glancesync-service\n[glancesync]\nTOKEN_CACHE_SECONDS = 0\n"
        "[gunicorn]\nLOGLEVEL = debug\n"
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


def test_tokens_are_validated_with_an_application_credential(
    service: LiveService, cloud, own_credential
) -> None:
    admin = service.token()
    assert service.call("GET", "/regions/RegionA", admin).status_code == 200
    # A caller whose own token comes from an application credential.
    caller = cloud.application_credential("gs-caller")
    assert service.call("GET", "/regions/RegionA", app_token(cloud, caller)).status_code == 200
    # One restricted to the reader role carries no admin role: refused, as any member is.
    reader = cloud.application_credential("gs-caller-reader", roles=["reader"])
    refused = service.call("GET", "/regions/RegionA", app_token(cloud, reader))
    assert refused.status_code == 403
    bad = service.call("GET", "/regions/RegionA", "not-a-token")
    assert bad.status_code == 401
    log = service.log_text() + service.output_text()
    assert own_credential.secret not in log and caller.secret not in log and admin not in log


def test_a_revoked_service_credential_is_a_503_that_blames_the_service(
    service: LiveService, cloud, own_credential
) -> None:
    admin = service.token()
    cloud.delete_application_credential(own_credential)
    for _ in range(3):  # every worker: each has its own session and token
        answer = service.call("GET", "/regions/RegionA", admin)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["description"] == (
            "Keystone is unavailable: the service cannot authenticate to it"
        )
    log = service.log_text()
    assert (
        f"Keystone rejected the service's own credential (application credential "
        f"{own_credential.id}): NotFound"
    ) in log
    assert own_credential.secret not in log
    assert requests.get(service.url + "/", timeout=10).status_code == 200
