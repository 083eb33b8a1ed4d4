"""Credentials of targets: clouds.yaml entries, any keystoneauth plugin, the old lines."""

import base64
import os

import pytest

from fiwareglancesync import cli
from fiwareglancesync.config import apply_overrides, build_config, read_config_text
from fiwareglancesync.credentials import (
    Credential,
    CredentialProblem,
    auth_plugin,
    credential_from_cloud,
)
from fiwareglancesync.errors import ConfigError

APP_SECRET = "app-cred-secret-0123456789"
PASSWORD = "b0b-pass-word-0001"

CLOUDS = """
clouds:
  federation:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.org:5000/v3
      application_credential_id: 0123abcd
    interface: internal
    cacert: /etc/ssl/federation.pem
  second:
    auth:
      auth_url: https://keystone2.example.org/v3
      username: bob
      project_name: images
      user_domain_name: Default
      project_domain_name: Default
    verify: false
"""
SECURE = f"""
clouds:
  federation:
    auth:
      application_credential_secret: {APP_SECRET}
  second:
    auth:
      password: {PASSWORD}
"""


@pytest.fixture
def clouds_files(tmp_path):
    clouds, secure = tmp_path / "clouds.yaml", tmp_path / "secure.yaml"
    clouds.write_text(CLOUDS)
    secure.write_text(SECURE)
    return {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLIENT_SECURE_FILE": str(secure)}


def load(text, environ=None, overrides=()):
    parser = read_config_text(text, "test.conf")
    problems = apply_overrides(parser, overrides)
    return build_config(parser, environ or {}, "test.conf", problems)


def problems_of(text, environ=None):
    with pytest.raises(ConfigError) as raised:
        load(text, environ)
    return raised.value.problems


def test_a_cloud_entry_gives_the_whole_credential_with_secure_yaml_merged(clouds_files):
    config = load("[main]\nmaster_region = R\n[master]\ncloud = federation\n", clouds_files)
    credential = config.master.credential
    assert credential.auth_type == "v3applicationcredential"
    assert credential.option("application_credential_secret") == APP_SECRET
    assert credential.option("application_credential_id") == "0123abcd"
    assert credential.auth_url == "https://keystone.example.org:5000/v3"
    assert (credential.interface, credential.cacert, credential.insecure) == (
        "internal",
        "/etc/ssl/federation.pem",
        False,
    )
    assert credential.cloud == "federation"
    assert APP_SECRET not in repr(config)


def test_a_password_cloud_and_verify_false(clouds_files):
    config = load("[main]\nmaster_region = R\n[master]\ncloud = second\n", clouds_files)
    credential = config.master.credential
    assert credential.auth_type in ("password", "v3password")
    assert (credential.user, credential.password, credential.project_name) == (
        "bob",
        PASSWORD,
        "images",
    )
    assert credential.insecure is True and credential.verify is False
    assert PASSWORD not in repr(credential)


def test_os_cloud_names_the_master_cloud(clouds_files):
    environ = {**clouds_files, "OS_CLOUD": "federation"}
    config = load("[main]\nmaster_region = R\n", environ)
    assert config.master.credential.cloud == "federation"


def test_the_file_s_own_credential_wins_over_os_cloud(clouds_files):
    environ = {**clouds_files, "OS_CLOUD": "federation"}
    text = "[main]\nmaster_region = R\n[master]\nuser = u\npassword = p\n"
    text += "keystone_url = http://k/v3\ntenant = t\n"
    assert load(text, environ).master.credential.cloud is None


def test_clouds_yaml_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "clouds.yaml").write_text(CLOUDS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load("[main]\nmaster_region = R\n[master]\ncloud = second\n", {})
    assert config.master.credential.user == "bob"


def test_an_unknown_cloud_names_it_and_the_files_searched(clouds_files, tmp_path):
    problems = problems_of("[main]\nmaster_region = R\n[master]\ncloud = nosuch\n", clouds_files)
    assert len(problems) == 1
    clouds = clouds_files["OS_CLIENT_CONFIG_FILE"]
    assert problems[0].startswith(
        f"master: cloud 'nosuch' not found in {clouds}; searched {clouds}, "
        f"{os.path.join(os.getcwd(), 'clouds.yaml')}, "
    )
    assert "/etc/openstack/clouds.yaml" in problems[0]


def test_an_unknown_cloud_is_exit_2_in_one_line(clouds_files, tmp_path, capsys):
    conf = tmp_path / "glancesync.conf"
    conf.write_text("[main]\nmaster_region = R\n[master]\ncloud = nosuch\n")
    status = cli.main(["--show-status"], environ={"GLANCESYNC_CONFIG": str(conf), **clouds_files})
    err = capsys.readouterr().err
    assert status == 2
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if "cloud 'nosuch' not found" in line
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("lines", "given"),
    [
        ("user = u\npassword = p\n", "user, password"),
        (f"credential = a,{base64.b64encode(b'x').decode()},http://k/v3,p\n", "credential"),
        ("auth_type = v3token\ntoken = abc\n", "auth_type"),
    ],
)
def test_cloud_cannot_be_combined_with_another_credential(clouds_files, lines, given):
    text = f"[main]\nmaster_region = R\n[master]\ncloud = federation\n{lines}"
    assert problems_of(text, clouds_files) == [
        f"master: cloud cannot be combined with {given} (the clouds.yaml entry holds the "
        "whole credential)"
    ]


def test_an_application_credential_in_glancesync_conf():
    text = (
        "[main]\nmaster_region = R\n[master]\nauth_type = v3applicationcredential\n"
        "keystone_url = http://k:5000/v3\napplication_credential_id = ac1\n"
        f"application_credential_secret = {APP_SECRET}\n"
    )
    config = load(text)
    credential = config.master.credential
    assert credential.plugin_options() == {
        "auth_url": "http://k:5000/v3",
        "application_credential_id": "ac1",
        "application_credential_secret": APP_SECRET,
    }
    assert config.warnings == ()  # the plugin's options are known options there
    assert credential.describe() == "application credential ac1"
    plugin = auth_plugin(credential)
    assert type(plugin).__name__ == "ApplicationCredential"


def test_an_application_credential_by_name_and_user_gets_the_default_domain():
    text = (
        "[main]\nmaster_region = R\n[other]\nauth_type = v3applicationcredential\n"
        "keystone_url = http://k:5000/v3\napplication_credential_name = sync\nuser = bob\n"
        f"application_credential_secret = {APP_SECRET}\n"
        "[master]\nuser = u\npassword = p\nkeystone_url = http://k/v3\ntenant = t\n"
    )
    credential = load(text).targets["other"].credential
    assert credential.option("username") == "bob"
    assert credential.option("user_domain_name") == "Default"
    assert credential.describe() == "application credential sync of user bob"


def test_the_master_plugin_from_os_variables():
    environ = {
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": "http://k/v3",
        "OS_APPLICATION_CREDENTIAL_ID": "ac9",
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_SECRET,
    }
    credential = load("[main]\nmaster_region = R\n", environ).master.credential
    assert credential.option("application_credential_id") == "ac9"


def test_plugin_problems_are_one_line_each():
    text = (
        "[main]\nmaster_region = R\n[master]\nauth_type = v3applicationcredential\n"
        "keystone_url = http://k/v3\napplication_credential_id = ac1\n"
        "[other]\nauth_type = nosuchplugin\nkeystone_url = http://k/v3\n"
        "[third]\nauth_type = v3token\ntoken = t\ncredential = a,eA==,http://k/v3,p\n"
    )
    problems = problems_of(text)
    assert problems[0] == (
        "master: auth_type v3applicationcredential needs application_credential_secret"
    )
    assert problems[1].startswith("other: unknown keystoneauth plugin 'nosuchplugin' (known: ")
    assert "v3applicationcredential" in problems[1]
    assert problems[2] == (
        "third: credential (a user's password) cannot be combined with auth_type v3token"
    )


def test_the_historic_lines_make_a_password_credential():
    credential = Credential.with_password("u", "p", "http://k/v3", "t")
    assert credential.describe() == "user u on project t"
    assert type(auth_plugin(credential)).__name__ == "Password"


def test_a_malformed_clouds_yaml_is_one_problem(tmp_path):
    bad = tmp_path / "clouds.yaml"
    bad.write_text("clouds: [unclosed\n")
    with pytest.raises(CredentialProblem) as raised:
        credential_from_cloud("x", {"OS_CLIENT_CONFIG_FILE": str(bad)})
    assert "\n" not in str(raised.value)
