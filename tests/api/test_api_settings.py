"""Settings: the INI file, OS_* fallbacks, the database, and start-up errors."""

from __future__ import annotations

import textwrap
from operator import attrgetter
from pathlib import Path

import pytest

from fiwareglancesync.app import create_app
from fiwareglancesync.app.auth import CachingVerifier, KeystoneVerifier
from fiwareglancesync.app.settings import KEYSTONE_OPTIONS, Settings, SettingsError, load_settings
from fiwareglancesync.config import load_config
from fiwareglancesync.osenv import CREDENTIAL_VARIABLES

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "glancesync.conf"


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def settings_file(tmp_path: Path) -> str:
    return write(
        tmp_path / "fiware-glancesync.cfg",
        """
        [openstack]
        KEYSTONE_URL = http://127.0.0.1:5000/v3
        ADM_USER = glancesync
        ADM_PASS = s3cret
        ADM_TENANT_NAME = admin
        USER_DOMAIN_NAME = Default

        [glancesync]
        HOST = 127.0.0.1
        PORT = 9090
        OWNER = Example Lab
        ROLE = operator
        TASK_LEASE_SECONDS = 12

        [gunicorn]
        WORKERS = 5
        LOGLEVEL = DEBUG
        """,
    )


def test_the_settings_file_is_read(settings_file: str, tmp_path: Path) -> None:
    environ = {
        "GLANCESYNC_SETTINGS_FILE": settings_file,
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    settings = load_settings(environ)
    assert (settings.host, settings.port, settings.owner, settings.role) == (
        "127.0.0.1",
        9090,
        "Example Lab",
        "operator",
    )
    assert (settings.workers, settings.loglevel, settings.task_lease_seconds) == (5, "debug", 12)
    keystone = settings.keystone
    assert (keystone.url, keystone.user, keystone.password, keystone.project_name) == (
        "http://127.0.0.1:5000/v3",
        "glancesync",
        "s3cret",
        "admin",
    )
    assert settings.database_uri == f"sqlite:///{tmp_path}/glancesyncapi.db"
    assert "s3cret" not in repr(settings)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert (settings.host, settings.port, settings.role, settings.status) == (
        "127.0.0.1",
        8080,
        "admin",
        "SUPPORTED",
    )
    assert settings.database_uri == f"sqlite:///{tmp_path}/glancesyncapi.db"
    assert settings.keystone.missing()


def test_keystone_settings_fall_back_to_os_variables(tmp_path: Path) -> None:
    path = write(tmp_path / "s.cfg", "[openstack]\nADM_USER = from-file\n")
    environ = {
        "GLANCESYNC_SETTINGS_FILE": path,
        "OS_USERNAME": "from-env",
        "OS_PASSWORD": "pw",
        "OS_AUTH_URL": "http://127.0.0.1:5000",
        "OS_PROJECT_ID": "p-id",
        "OS_USER_DOMAIN_NAME": "Users",
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    keystone = load_settings(environ).keystone
    assert keystone.user == "from-file"
    assert (keystone.password, keystone.url, keystone.project_id) == (
        "pw",
        "http://127.0.0.1:5000",
        "p-id",
    )
    assert keystone.user_domain_name == "Users"
    assert keystone.missing() == []


@pytest.mark.parametrize(
    "in_file, in_environment, insecure",
    [
        (None, None, False),
        ("yes", None, True),
        ("Off", "true", False),  # the file wins
        (None, "ON", True),
        (None, "0", False),
        (None, "", False),
    ],
)
def test_insecure_takes_the_boolean_words(
    tmp_path: Path, in_file: str | None, in_environment: str | None, insecure: bool
) -> None:
    text = "[openstack]\n" + (f"INSECURE = {in_file}\n" if in_file is not None else "")
    environ = {
        "GLANCESYNC_SETTINGS_FILE": write(tmp_path / "s.cfg", text),
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    if in_environment is not None:
        environ["OS_INSECURE"] = in_environment
    assert load_settings(environ).keystone.insecure is insecure


@pytest.mark.parametrize(
    "text, variable, problem",
    [
        (
            "[openstack]\nINSECURE = sometimes\n",
            None,
            "[openstack] INSECURE = 'sometimes' is not a boolean "
            "(use true/false, yes/no, on/off, 1/0)",
        ),
        (
            "[glancesync]\nPORT = 9090\n",
            "maybe",
            "OS_INSECURE = 'maybe' is not a boolean (use true/false, yes/no, on/off, 1/0)",
        ),
    ],
)
def test_a_bad_insecure_value_is_a_reported_problem(
    tmp_path: Path, text: str, variable: str | None, problem: str
) -> None:
    environ = {
        "GLANCESYNC_SETTINGS_FILE": write(tmp_path / "s.cfg", text + "[gunicorn]\nWORKERS = 0\n"),
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    if variable is not None:
        environ["OS_INSECURE"] = variable
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    # Reported with the other problems, one line each, not silently taken as false.
    assert raised.value.problems == [
        "[gunicorn] WORKERS must be greater than zero, not 0",
        problem,
    ]


# Where each credential piece ends up in a sync target's configuration.
TARGET_FIELDS = {
    "user": "credential.user",
    "password": "credential.password",
    "keystone_url": "credential.auth_url",
    "tenant": "credential.project_name",
    "user_domain_name": "credential.user_domain_name",
    "project_domain_name": "credential.project_domain_name",
    "cacert": "credential.cacert",
    "tenant_id": "tenant_id",
}


@pytest.mark.parametrize(
    "piece, variable",
    [(piece, variable) for piece, names in CREDENTIAL_VARIABLES.items() for variable in names],
)
def test_the_service_and_the_command_line_read_the_same_os_variables(
    tmp_path: Path, piece: str, variable: str
) -> None:
    environ = {
        "OS_REGION_NAME": "Master",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_AUTH_URL": "http://127.0.0.1:5000/v3",
        "OS_PROJECT_NAME": "proj",
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    for other in CREDENTIAL_VARIABLES[piece]:
        environ.pop(other, None)  # the first set wins: leave only the one under test
    environ[variable] = f"from-{variable}"
    master = load_config(environ, search_paths=()).master
    assert attrgetter(TARGET_FIELDS[piece])(master) == f"from-{variable}"
    (field_name,) = [name for name, p in KEYSTONE_OPTIONS.values() if p == piece]
    assert getattr(load_settings(environ).keystone, field_name) == f"from-{variable}"


def test_a_database_url_wins_over_the_path(tmp_path: Path) -> None:
    environ = {
        "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@127.0.0.1/glancesync",
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
    }
    assert load_settings(environ).database_uri.startswith("postgresql+psycopg://")


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.cfg",
        """
        [glancesync]
        PORT = eighty
        TASK_LEASE_SECONDS = 0
        [gunicorn]
        WORKERS = -1
        LOGLEVEL = chatty
        """,
    )
    in_the_way = write(tmp_path / "a-file", "not a directory\n")
    environ = {
        "GLANCESYNC_SETTINGS_FILE": path,
        "GLANCESYNCAPP_DATABASE_PATH": str(Path(in_the_way) / "db"),
        "GLANCESYNCAPP_CONFIG": str(tmp_path / "nope.py"),
    }
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    text = "\n".join(raised.value.problems)
    for expected in (
        "PORT",
        "TASK_LEASE_SECONDS",
        "WORKERS",
        "LOGLEVEL",
        "cannot be created",
        "nope.py",
    ):
        assert expected in text
    assert len(raised.value.problems) == 6


def test_a_missing_database_directory_is_created(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "db"
    settings = load_settings({"GLANCESYNCAPP_DATABASE_PATH": str(directory)})
    assert directory.is_dir()
    assert settings.database_uri == f"sqlite:///{directory}/glancesyncapi.db"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_numbers_that_are_not_finite_are_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "s.cfg", f"[glancesync]\nTOKEN_CACHE_SECONDS = {value}\n")
    with pytest.raises(SettingsError, match="is not a finite number"):
        load_settings(
            {"GLANCESYNC_SETTINGS_FILE": path, "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path)}
        )


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings({"GLANCESYNC_SETTINGS_FILE": str(tmp_path / "absent.cfg")})


def test_create_app_reports_keystone_and_sync_configuration_problems(tmp_path: Path) -> None:
    environ = {
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
        "GLANCESYNC_CONFIG": write(tmp_path / "sync.conf", "[main]\nmax_children = many\n"),
    }
    with pytest.raises(SettingsError) as raised:
        create_app(environ=environ)
    text = "\n".join(raised.value.problems)
    assert "KEYSTONE_URL" in text and "ADM_PASS" in text
    assert "sync configuration:" in text and "master_region" in text


def test_create_app_with_complete_settings_validates_tokens_against_keystone(
    settings_file: str, tmp_path: Path
) -> None:
    environ = {
        "GLANCESYNC_SETTINGS_FILE": settings_file,
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
        "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(tmp_path / "store"),
    }
    app = create_app(environ=environ)
    verifier = app.extensions["glancesync"].verifier
    assert isinstance(verifier, CachingVerifier)
    assert isinstance(verifier.inner, KeystoneVerifier)
    assert verifier.inner.url == "http://127.0.0.1:5000/v3"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/glancesyncapi.db"


def test_an_extra_python_config_file_is_applied(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.py", "SQLALCHEMY_ECHO = False\nGLANCESYNC_EXTRA = 'yes'\n")
    settings = Settings(database_uri=f"sqlite:///{tmp_path}/x.db", extra_config=extra)
    app = create_app({"GLANCESYNC_SETTINGS": settings, "DATABASE_ONLY": True}, environ={})
    assert app.config["GLANCESYNC_EXTRA"] == "yes"


def test_creating_the_app_touches_no_database(tmp_path: Path) -> None:
    settings = Settings(database_uri=f"sqlite:///{tmp_path}/x.db")
    create_app({"GLANCESYNC_SETTINGS": settings, "DATABASE_ONLY": True}, environ={})
    assert not (tmp_path / "x.db").exists()


def test_on_the_mock_the_service_starts_without_keystone_settings(tmp_path: Path) -> None:
    environ = {
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
        "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(tmp_path / "store"),
    }
    client = create_app(environ=environ).test_client()
    assert client.get("/").status_code == 200
    answer = client.get("/regions/Leon", headers={"X-Auth-Token": "anything"})
    assert answer.status_code == 503
    error = answer.get_json()["error"]
    assert error["message"] == "Service unavailable"
    assert "token validation is not configured" in error["description"]
    assert "KEYSTONE_URL" in error["description"]


def test_off_the_mock_missing_keystone_settings_stop_the_start(tmp_path: Path) -> None:
    environ = {
        "GLANCESYNCAPP_DATABASE_PATH": str(tmp_path),
        "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
    }
    with pytest.raises(SettingsError, match="KEYSTONE_URL is not set"):
        create_app(environ=environ)
