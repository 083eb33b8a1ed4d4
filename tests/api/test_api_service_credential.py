"""The service's own credential: CLOUD = NAME, AUTH_TYPE = PLUGIN, or the ADM_* lines."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fiwareglancesync.app.auth import KeystoneVerifier
from fiwareglancesync.app.logs import redact
from fiwareglancesync.app.settings import SettingsError, load_settings

SECRET = "service-app-cred-secret-42"


def settings_of(tmp_path: Path, text: str, **environ: str):
    path = tmp_path / "fiware-glancesync.cfg"
    path.write_text(textwrap.dedent(text))
    return load_settings(
        {"GLANCESYNC_SETTINGS_FILE": str(path), "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path)}
        | environ
    )


def clouds(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  svc:\n    auth_type: v3applicationcredential\n    auth:\n"
        "      auth_url: http://127.0.0.1:5000\n      application_credential_id: svc1\n"
    )
    (tmp_path / "secure.yaml").write_text(
        f"clouds:\n  svc:\n    auth:\n      application_credential_secret: {SECRET}\n"
    )
    return {
        "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
        "OS_CLIENT_SECURE_FILE": str(tmp_path / "secure.yaml"),
    }


def test_cloud_gives_the_service_its_credential(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "[openstack]\nCLOUD = svc\n", **clouds(tmp_path))
    keystone = settings.keystone
    assert keystone.missing() == []
    assert keystone.credential().auth_type == "v3applicationcredential"
    assert keystone.secrets() == [SECRET]
    assert SECRET not in repr(settings)
    verifier = KeystoneVerifier(keystone)
    assert verifier.url == "http://127.0.0.1:5000/v3"
    assert type(verifier._new_session().auth).__name__ == "ApplicationCredential"


def test_os_cloud_stands_for_cloud_when_the_file_sets_no_credential(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path, "[glancesync]\nPORT = 9000\n", OS_CLOUD="svc", **clouds(tmp_path)
    )
    assert settings.keystone.credential().cloud == "svc"


def test_an_application_credential_in_the_settings_file(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        f"""
        [openstack]
        KEYSTONE_URL = http://127.0.0.1:5000
        AUTH_TYPE = v3applicationcredential
        APPLICATION_CREDENTIAL_ID = svc2
        APPLICATION_CREDENTIAL_SECRET = {SECRET}
        """,
    )
    credential = settings.keystone.credential()
    assert credential.plugin_options() == {
        "auth_url": "http://127.0.0.1:5000/v3",
        "application_credential_id": "svc2",
        "application_credential_secret": SECRET,
    }
    assert redact(f"application_credential_secret={SECRET}", settings.keystone.secrets()) == (
        "application_credential_secret=***"
    )


def test_the_adm_lines_still_make_a_password_credential(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        """
        [openstack]
        KEYSTONE_URL = http://127.0.0.1:5000/v2.0
        ADM_USER = glancesync
        ADM_PASS = s3cret-pass
        ADM_TENANT_ID = 00ff
        """,
    )
    credential = settings.keystone.credential()
    assert credential.plugin_options() == {
        "auth_url": "http://127.0.0.1:5000/v3",
        "username": "glancesync",
        "password": "s3cret-pass",
        "user_domain_name": "Default",
        "project_id": "00ff",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[openstack]\nCLOUD = svc\nADM_USER = u\nADM_PASS = p\n",
            "[openstack] CLOUD cannot be combined with ADM_USER, ADM_PASS (the clouds.yaml "
            "entry holds the whole credential)",
        ),
        (
            "[openstack]\nCLOUD = nosuch\n",
            "[openstack] cloud 'nosuch' not found in ",
        ),
        (
            "[openstack]\nKEYSTONE_URL = http://k\nAUTH_TYPE = v3applicationcredential\n"
            "APPLICATION_CREDENTIAL_ID = x\n",
            "[openstack] auth_type v3applicationcredential needs application_credential_secret",
        ),
    ],
)
def test_service_credential_problems(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_of(tmp_path, text, **clouds(tmp_path))
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith(problem)
