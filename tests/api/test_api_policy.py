"""Authorization by oslo.policy: who is an admin of GlanceSync, and an operator's file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import make_app
from flask import Flask

from fiwareglancesync.app.auth import Identity, StaticVerifier
from fiwareglancesync.app.policy import Policy, list_rules
from fiwareglancesync.app.settings import Settings

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
SERVICE_PROJECT = "service-project"
ADMIN = Identity("a-id", "admin", SERVICE_PROJECT, frozenset({"admin"}), LATER, "default")
CALLERS = {
    "service-admin": ADMIN,
    "member": dataclasses.replace(ADMIN, user_id="m-id", roles=frozenset({"member"})),
    "other-project-admin": dataclasses.replace(ADMIN, user_id="o-id", project_id="other"),
    "domain-admin": dataclasses.replace(ADMIN, user_id="d-id", project_id=None),
    "system-admin": dataclasses.replace(ADMIN, user_id="s-id", project_id=None, system_scoped=True),
}
# Every protected endpoint, with a body-less request that cannot start anything if refused.
ENDPOINTS = [
    ("get", "/status.json"),
    ("get", "/status"),
    ("get", "/regions/Burgos"),
    ("post", "/regions/Burgos"),
    ("get", "/regions/Burgos/tasks/00000000-0000-0000-0000-000000000000"),
    ("delete", "/regions/Burgos/tasks/00000000-0000-0000-0000-000000000000"),
]


@pytest.fixture
def service(sqlite_url: str, engines, tmp_path: Path) -> Iterator:
    def build(**settings: object) -> Flask:
        verifier = StaticVerifier(CALLERS, service_project=SERVICE_PROJECT)
        return make_app(Settings(database_uri=sqlite_url, **settings), verifier, engines)

    yield build


def _codes(app: Flask, token: str) -> list[int]:
    client = app.test_client()
    return [
        getattr(client, method)(path, headers={"X-Auth-Token": token}).status_code
        for method, path in ENDPOINTS
    ]


@pytest.mark.parametrize("token", ["member", "other-project-admin", "domain-admin", "system-admin"])
def test_only_the_service_projects_admin_passes_by_default(service, token: str) -> None:
    app = service()
    assert set(_codes(app, token)) == {403}
    assert 403 not in _codes(app, "service-admin")


def test_listed_projects_and_the_system_scope_are_settings(service) -> None:
    app = service(allowed_projects=("other",), allow_system_scope=True)
    for token in ("other-project-admin", "system-admin"):
        assert 403 not in _codes(app, token)
    # A domain-scoped token carries roles on no project: never, whatever the settings.
    assert set(_codes(app, "domain-admin")) == {403}


def test_an_operator_file_widens_and_narrows_rules(service, tmp_path: Path) -> None:
    widen = tmp_path / "widen.yaml"
    widen.write_text('"glancesync:status:get": "role:member"\n', encoding="utf-8")
    app = service(policy_file=str(widen))
    codes = dict(zip(ENDPOINTS, _codes(app, "member"), strict=True))
    assert codes[("get", "/status.json")] == 200
    assert codes[("post", "/regions/Burgos")] == 403
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text('"glancesync:task:delete": "!"\n', encoding="utf-8")
    app = service(policy_file=str(narrow))
    codes = dict(zip(ENDPOINTS, _codes(app, "service-admin"), strict=True))
    assert codes[("delete", ENDPOINTS[-1][1])] == 403
    assert codes[("get", "/status.json")] == 200


def test_a_refusal_is_one_audit_line_naming_the_caller(
    service, caplog: pytest.LogCaptureFixture
) -> None:
    app = service()
    with caplog.at_level(logging.INFO, logger="fiwareglancesync.app.audit"):
        app.test_client().post("/regions/Burgos", headers={"X-Auth-Token": "other-project-admin"})
        app.test_client().post("/regions/Burgos", headers={"X-Auth-Token": "garbage"})
    lines = [r.getMessage() for r in caplog.records if r.name == "fiwareglancesync.app.audit"]
    assert lines[0].startswith("Refused 403: POST /regions/Burgos rule=glancesync:sync:start")
    assert "user=o-id (admin) domain=default project=other" in lines[0]
    assert lines[1].startswith("Refused 401") and "garbage" not in lines[1]


def test_the_sample_is_generated_from_the_registered_rules() -> None:
    names = {rule.name for rule in list_rules()}
    assert {"glancesync:sync:start", "glancesync:task:delete"} <= names
    Policy("admin")  # the defaults load without a file
    sample = subprocess.run(
        [
            str(Path(sys.executable).with_name("oslopolicy-sample-generator")),
            "--namespace",
            "fiwareglancesync",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '#"glancesync:sync:start": "rule:glancesync:admin"' in sample
    # The page includes the generated file: it must be what the generator writes now.
    shipped = Path(__file__).resolve().parents[2] / "doc" / "policy.yaml.sample"
    assert shipped.read_text(encoding="utf-8") == sample


def test_start_join_and_delete_are_audited_with_the_callers_ids(
    service, engines, caplog: pytest.LogCaptureFixture
) -> None:
    from fiwareglancesync.app.extensions import db
    from fiwareglancesync.app.models import Task, TaskJoin

    app = service(allowed_projects=("other",))
    client = app.test_client()
    engines.hold()
    with caplog.at_level(logging.INFO, logger="fiwareglancesync.app.audit"):
        first = client.post("/regions/Burgos", headers={"X-Auth-Token": "service-admin"})
        second = client.post("/regions/Burgos", headers={"X-Auth-Token": "other-project-admin"})
        task_id = first.get_json()["taskId"]
        assert second.get_json()["taskId"] == task_id
        engines.release()
        wait_for_task(client, "Burgos", task_id, {"X-Auth-Token": "service-admin"})
        with app.app_context():
            task = db.session.get(Task, task_id)
            assert (task.requested_by_id, task.requested_by_domain) == ("a-id", "default")
            assert task.requested_by_project_id == SERVICE_PROJECT
        client.delete(f"/regions/Burgos/tasks/{task_id}", headers={"X-Auth-Token": "service-admin"})
    lines = [r.getMessage() for r in caplog.records if r.name == "fiwareglancesync.app.audit"]
    assert lines == [
        f"Task {task_id} started: sync of region Burgos by "
        f"user=a-id (admin) domain=default project={SERVICE_PROJECT}",
        f"Task {task_id} joined: sync of region Burgos by user=o-id (admin) domain=default "
        "project=other",
        f"Task {task_id} of region Burgos deleted by "
        f"user=a-id (admin) domain=default project={SERVICE_PROJECT}",
    ]
    with app.app_context():
        joins = db.session.scalars(db.select(TaskJoin)).all()
        assert [(j.task_id, j.user_id, j.project_id) for j in joins] == [(task_id, "o-id", "other")]
        assert db.session.get(Task, task_id) is None  # deleted; its start is in the log


def wait_for_task(client, region: str, task_id: str, headers: dict[str, str]) -> None:
    client.application.extensions["glancesync"].runner.wait(30)
    assert client.get(f"/regions/{region}/tasks/{task_id}", headers=headers).status_code == 200


def _admin_of_another_project_reads_status(policy: Policy) -> bool:
    return policy.allows("glancesync:status:get", CALLERS["other-project-admin"], SERVICE_PROJECT)


def test_no_policy_file_found_by_oslo_search_paths_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oslo.config would find a policy.yaml (or policy.d) in ~, ~/.glancesync, /etc...:
    # with no POLICY_FILE, only the defaults count.
    home = tmp_path / "home"
    (home / ".glancesync" / "policy.d").mkdir(parents=True)
    for stray in (home / "policy.yaml", home / ".glancesync" / "policy.d" / "open.yaml"):
        stray.write_text('"glancesync:status:get": "@"\n', encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    assert not _admin_of_another_project_reads_status(Policy("admin"))
    named = Policy("admin", str(home / "policy.yaml"))
    assert _admin_of_another_project_reads_status(named)


def test_a_relative_policy_file_is_the_one_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    Path("open.yaml").write_text('"glancesync:status:get": "@"\n', encoding="utf-8")
    policy = Policy("admin", "open.yaml")
    monkeypatch.chdir("/")  # gunicorn workers may run elsewhere: the path was made absolute
    assert _admin_of_another_project_reads_status(policy)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{{: [\n", "while parsing a flow node"),
        ("- a list\n", "not a mapping of rule names to rules"),
    ],
)
def test_a_policy_file_that_cannot_be_read_stops_the_start(
    tmp_path: Path, text: str, reason: str
) -> None:
    from fiwareglancesync.app.settings import SettingsError

    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        Policy("admin", str(broken))
    assert raised.value.problems == [
        f"[glancesync] POLICY_FILE = {broken} cannot be read: {reason}"
    ]


def test_a_scope_refusal_is_forbidden_naming_the_rule(service) -> None:
    answer = (
        service().test_client().get("/status.json", headers={"X-Auth-Token": "other-project-admin"})
    )
    assert answer.status_code == 403
    assert answer.get_json() == {
        "error": {
            "message": "Forbidden",
            "code": 403,
            "description": "policy rule glancesync:status:get does not allow this token",
        }
    }


def test_a_broken_policy_file_is_one_error_line_at_start(tmp_path: Path) -> None:
    from test_api_noauth import free_port, run_py, service_environ

    environ = service_environ(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("- a list\n", encoding="utf-8")
    settings = Path(environ["GLANCESYNC_SETTINGS_FILE"])
    settings.write_text(f"[glancesync]\nPOLICY_FILE = {broken}\n", encoding="utf-8")
    done = run_py(environ, tmp_path, "gunicornserver", "-p", str(free_port()))
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if "POLICY_FILE" in line] == [
        f"ERROR: [glancesync] POLICY_FILE = {broken} cannot be read: "
        "not a mapping of rule names to rules"
    ]
    assert "Traceback" not in done.stderr


def test_an_edit_is_read_without_a_restart_and_a_broken_one_keeps_the_last_rules(
    service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    rules = tmp_path / "rules.yaml"
    rules.write_text('"glancesync:task:delete": "!"\n', encoding="utf-8")
    app = service(policy_file=str(rules))
    client = app.test_client()

    def status(token: str) -> int:
        return client.get("/status.json", headers={"X-Auth-Token": token}).status_code

    assert (status("service-admin"), status("member")) == (200, 403)
    for text, expected in [
        # The rule replaces the default: the admin (no member role here) is out now.
        ('"glancesync:status:get": "role:member"\n', (403, 200)),
        ("{{{: [\n", (403, 200)),  # unreadable: the rules read before stay
        ('"glancesync:status:get": "rule:glancesync:admin"\n', (200, 403)),
    ]:
        stamp = rules.stat().st_mtime + 10
        rules.write_text(text, encoding="utf-8")
        os.utime(rules, (stamp, stamp))
        assert (status("service-admin"), status("member")) == expected
    errors = [r.getMessage() for r in caplog.records if r.name == "fiwareglancesync.app.policy"]
    assert errors == [
        f"POLICY_FILE {rules} cannot be read (while parsing a flow node): "
        "the rules read before stay in force"
    ]
