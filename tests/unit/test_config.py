"""Configuration: every option, inheritance, environment fallbacks, overrides, errors."""

import base64

import pytest

from fiwareglancesync.config import (
    OPTIONS,
    OPTIONS_BY_NAME,
    Config,
    Credential,
    TargetConfig,
    build_config,
    default_of,
    load_config,
    read_config_text,
)
from fiwareglancesync.errors import ConfigError

SECRET = base64.b64encode(b"s3cret").decode()
BASIC = f"""
[main]
master_region = Spain2
preferable_order = Trento, Berlin
max_children = 3
images_dir = /srv/images

[DEFAULT]
metadata_set = nid , type, sdc_aware
replace = any
only_tenant_images = no
list_images_timeout = 12.5

[master]
credential = admin,{SECRET},http://keystone:5000/v3,admin
ignore_regions = Spain1, Spain3
forcesyncs = id1,id2

[experimental]
user = user2
password = clear text
keystone_url = http://keystone2:5000/v3
tenant = project2
tenant_id = 0042
user_domain_name = users
metadata_condition = image.is_public and \\
    image.user_properties.get('type', None) == 'baseimages'
only_tenant_images = on
support_obsolete_images = False
obsolete_syncprops = sdc_aware
dontupdate = c1, c2
rename = c3
transfer = Glance-Download
import_timeout = 600
"""


def load(text, environ=None, overrides=()):
    parser = read_config_text(text, "test.conf")
    from fiwareglancesync.config import apply_overrides

    problems = apply_overrides(parser, overrides)
    return build_config(parser, environ or {}, "test.conf", problems)


def test_every_option_is_read_and_typed():
    config = load(BASIC)
    assert config.master_region == "Spain2"
    assert config.preferable_order == ("Trento", "Berlin")
    assert config.max_children == 3
    assert config.images_dir == "/srv/images"
    master, other = config.targets["master"], config.targets["experimental"]
    assert master.credential.user == "admin"
    assert master.credential.password == "s3cret"
    assert master.credential.auth_url == "http://keystone:5000/v3"
    assert master.credential.project_name == "admin"
    assert master.ignore_regions == ("Spain1", "Spain3")
    assert master.forcesyncs == {"id1", "id2"}
    assert master.metadata_set == {"nid", "type", "sdc_aware"}
    assert master.replace == {"any"}
    assert master.only_tenant_images is False
    assert master.list_images_timeout == 12.5
    assert other.credential.password == "clear text"
    assert other.credential.user_domain_name == "users"
    assert other.credential.project_domain_name == "Default"
    assert other.tenant_id == "0042"
    assert other.only_tenant_images is True
    assert other.support_obsolete_images is False
    assert other.obsolete_syncprops == {"sdc_aware"}
    assert other.dontupdate == {"c1", "c2"} and other.rename == {"c3"}
    assert other.metadata_set == {"nid", "type", "sdc_aware"}  # from [DEFAULT]
    assert "\\" not in other.metadata_condition.text
    assert (master.transfer, master.import_timeout) == ("auto", 1800.0)
    assert (other.transfer, other.import_timeout) == ("glance-download", 600.0)


def test_the_typed_objects_default_to_the_option_table():
    # Built in code with nothing but what is required, or loaded from a file that sets
    # nothing else: the same objects, because both take their defaults from OPTIONS.
    text = f"[main]\nmaster_region = R\n[master]\ncredential = a,{SECRET},http://k/v3,p\n"
    credential = Credential.with_password("a", "s3cret", "http://k/v3", "p")
    built = Config("R", {"master": TargetConfig("master", credential)}, source="test.conf")
    assert load(text) == built
    assert built.lock_timeout == 60.0 and isinstance(built.lock_timeout, float)
    assert built.master.list_images_timeout == 30.0
    assert (built.max_children, built.images_dir) == (1, "/var/lib/glance/images")
    assert credential.user_domain_name == OPTIONS_BY_NAME["user_domain_name"].default
    for option in OPTIONS:
        assert default_of(option.name) == option.default


def test_backslash_continuation_without_indentation_joins_lines():
    text = BASIC.replace("and \\\n    image", "and \\\nimage")
    config = load(text)
    condition = config.targets["experimental"].metadata_condition
    assert (
        condition.text
        == "image.is_public and image.user_properties.get('type', None) == 'baseimages'"
    )


def test_passwords_never_appear_in_reprs():
    config = load(BASIC)
    assert "s3cret" not in repr(config)
    assert "clear text" not in repr(config)


def test_option_names_are_case_insensitive():
    config = load(BASIC.replace("max_children", "MAX_Children"))
    assert config.max_children == 3


def test_master_credential_from_environment_piece_by_piece():
    text = "[main]\nmaster_region = R\n[DEFAULT]\nmetadata_set = nid\n[master]\nuser = fileuser\n"
    environ = {
        "OS_USERNAME": "envuser",
        "OS_PASSWORD": "envpass",
        "OS_AUTH_URL": "http://k:5000/v3",
        "OS_TENANT_NAME": "envproject",
        "OS_USER_DOMAIN_NAME": "dom",
    }
    master = load(text, environ).master
    assert master.credential.user == "fileuser"
    assert master.credential.password == "envpass"
    assert master.credential.project_name == "envproject"
    assert master.credential.user_domain_name == "dom"
    assert master.metadata_set == {"nid"}


def test_no_file_at_all_uses_the_environment_and_still_inherits_nothing_else():
    environ = {
        "OS_REGION_NAME": "Spain2",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_AUTH_URL": "http://k:5000/v3",
        "OS_PROJECT_NAME": "proj",
    }
    config = load_config(environ, search_paths=())
    assert config.master_region == "Spain2"
    assert config.master.credential.project_name == "proj"
    assert config.master.only_tenant_images is True


def test_master_section_created_from_default_inherits_default():
    text = f"[main]\nmaster_region = R\n[DEFAULT]\ncredential = a,{SECRET},http://k/v3,p\nreplace = any\n"
    assert load(text).master.replace == {"any"}


def test_overrides_set_sections_default_and_keep_equal_signs():
    config = load(
        BASIC,
        overrides=[
            "main.master_region=Other",
            "metadata_condition=image.name == 'a=b'",
            "newtarget.credential=u," + SECRET + ",http://k/v3,p",
        ],
    )
    assert config.master_region == "Other"
    assert config.master.metadata_condition.text == "image.name == 'a=b'"
    assert "newtarget" in config.targets


def test_all_problems_are_reported_together():
    text = """
[main]
max_children = lots
[DEFAULT]
only_tenant_images = perhaps
metadata_condition = __import__('os').system('true')
[master]
credential = a,not-base64!,http://k/v3,p
[other]
user = x
[bad:name]
user = y
"""
    with pytest.raises(ConfigError) as raised:
        load(text, overrides=["novalue"])
    problems = "\n".join(raised.value.problems)
    for expected in (
        "main.max_children: 'lots' is not a number",
        "main.master_region: not set",
        "only_tenant_images: 'perhaps' is not a boolean",
        "metadata_condition: call of",
        "master.credential: the password is not valid base64",
        "other: incomplete credential, missing password, keystone_url, tenant",
        "[bad:name]: a target name cannot contain ':'",
        "--config 'novalue': expected KEY=VALUE",
    ):
        assert expected in problems, expected


def test_unreadable_syntax_is_one_config_error():
    with pytest.raises(ConfigError) as raised:
        load("no section header here\n")
    assert len(raised.value.problems) == 1


def test_config_file_lookup(tmp_path):
    missing = tmp_path / "missing.conf"
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config({"GLANCESYNC_CONFIG": str(missing)})
    first = tmp_path / "first.conf"
    first.write_text(BASIC)
    config = load_config({}, search_paths=(str(missing), str(first)))
    assert config.source == str(first)


def test_unknown_options_are_warnings_not_errors():
    config = load(BASIC + "colour = blue\n")
    assert config.warnings == ("unknown option experimental.colour ignored",)


def test_coordination_url_is_read_and_defaults_to_none():
    plain = f"[main]\nmaster_region = R\n[master]\ncredential = a,{SECRET},http://k/v3,p\n"
    assert load(plain).coordination_url is None
    text = plain.replace("[master]", "coordination_url = redis://127.0.0.1:6379\n[master]")
    assert load(text).coordination_url == "redis://127.0.0.1:6379"


def test_a_bad_coordination_url_is_reported_with_the_other_problems():
    text = f"""
[main]
master_region = R
coordination_url = redis://:hunter2@127.0.0.1:notaport
max_children = lots
[master]
credential = a,{SECRET},http://k/v3,p
"""
    with pytest.raises(ConfigError) as raised:
        load(text)
    problems = raised.value.problems
    assert (
        "main.coordination_url: the port of the redis:// URL is not a number between 0 and 65535"
        in problems
    )
    assert any(problem.startswith("main.max_children:") for problem in problems)
    assert "hunter2" not in "\n".join(problems)
