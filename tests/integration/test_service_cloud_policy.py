"""Who may use the service, on the real test cloud: scoped tokens, policy files, the audit.

Keystone A gets callers that each hold an ``admin`` role somewhere GlanceSync must not
trust: on a domain only (a user named ``admin`` of another domain), on the system, on
another project; and the ``member1`` member of the service's own project. Each is refused
on every endpoint with nothing started; the service project's admin is let through. A
second service runs with an operator's policy file (widened, then narrowed), ALLOWED_PROJECTS
and ALLOW_SYSTEM_SCOPE. Also: the audit lines and task fields, Keystone's request log
counting the validations of one bad token sent 50 times, and ``/metrics`` under 300
invented HTTP methods. One service per module (gunicorn, 3 workers), shared by its tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from prometheus_client.parser import text_string_to_metric_families
from service_support import LiveService
from sync_cloud_support import payload

WORKERS = 3  # LiveService's gunicorn workers
# Long enough that the 50 requests of the negative-cache test all fall inside it, however
# slow the machine: the test counts validations, not seconds.
REJECTED_SECONDS = 600
SUFFIX = uuid.uuid4().hex[:6]
NO_TASK = "00000000-0000-0000-0000-000000000000"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
AUDIT = re.compile(r" (INFO|WARNING) \[\d+\] fiwareglancesync\.app\.audit: (.*)$")
RULES = {
    ("GET", "/status.json"): "glancesync:status:get",
    ("GET", "/status"): "glancesync:status:get",
    ("GET", "/regions/RegionA"): "glancesync:status:get",
    ("POST", "/regions/RegionA"): "glancesync:sync:start",
    ("GET", "/regions/RegionA/tasks/{task}"): "glancesync:task:get",
    ("DELETE", "/regions/RegionA/tasks/{task}"): "glancesync:task:delete",
}


@dataclass(frozen=True)
class Caller:
    """A user of Keystone A with a token of one scope, and what the audit says of it."""

    user_id: str
    name: str
    domain_id: str
    project: str  # the audit's project field: an id, "system" or "-"
    token: str

    @property
    def audit(self) -> str:
        return f"user={self.user_id} ({self.name}) domain={self.domain_id} project={self.project}"


def _token(cloud: Any, name: str, password: str, user_domain_id: str, **scope: str) -> str:
    auth = v3.Password(
        auth_url=cloud.keystones["A"].auth_url,
        username=name,
        password=password,
        user_domain_id=user_domain_id,
        **scope,
    )
    return str(ks_session.Session(auth=auth).get_token())


@pytest.fixture(scope="module")
def callers(cloud) -> Iterator[dict[str, Caller]]:
    """The callers, made in Keystone A through its API (and removed at the end)."""
    from keystoneclient.v3 import client as keystone_client

    ks = cloud.keystones["A"]
    session = cloud.keystone_session("A")
    keystone = keystone_client.Client(session=session, endpoint_override=ks.auth_url)
    roles = {role.name: role for role in keystone.roles.list()}
    admin_project, project2 = ks.project_ids["admin"], ks.project_ids["project2"]
    password = f"pw-{SUFFIX}-secret"
    domain = keystone.domains.create(f"gs-dom2-{SUFFIX}")
    made: list[Any] = []

    def user(
        name: str, domain_id: str, shown_project: str, scope: dict[str, str], **grant: Any
    ) -> Caller:
        """A new user with the admin role on ``grant``, and a token of ``scope``;
        ``shown_project`` is what the audit lines will call its project."""
        created = keystone.users.create(name, domain=domain_id, password=password)
        made.append(created)
        keystone.roles.grant(roles["admin"], user=created, **grant)
        return Caller(
            created.id,
            name,
            domain_id,
            shown_project,
            _token(cloud, name, password, domain_id, **scope),
        )

    try:
        member = cloud.keystone_session("A", user="member1")
        yield {
            "service-admin": Caller(
                session.get_user_id(), "admin", "default", admin_project, session.get_token()
            ),
            "member": Caller(
                member.get_user_id(), "member1", "default", admin_project, member.get_token()
            ),
            # Named admin, as the service's admin is: only the ids tell them apart.
            "domain-admin": user(
                "admin", domain.id, "-", {"domain_id": domain.id}, domain=domain.id
            ),
            "system-admin": user(
                f"gs-system-{SUFFIX}", "default", "system", {"system_scope": "all"}, system="all"
            ),
            "other-admin": user(
                f"gs-other-{SUFFIX}",
                "default",
                project2,
                {"project_id": project2},
                project=project2,
            ),
            "second-admin": user(
                f"gs-second-{SUFFIX}",
                "default",
                admin_project,
                {"project_id": admin_project},
                project=admin_project,
            ),
        }
    finally:
        for created in made:
            with contextlib.suppress(Exception):
                keystone.users.delete(created)
        with contextlib.suppress(Exception):
            keystone.domains.update(domain, enabled=False)
            keystone.domains.delete(domain)


@pytest.fixture(scope="module")
def service(cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = LiveService(
        cloud,
        tmp_path_factory.mktemp("service-policy"),
        extra_settings=f"REJECTED_TOKEN_CACHE_SECONDS = {REJECTED_SECONDS}\n",
    ).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def finished_task(service: LiveService, callers: dict[str, Caller]) -> str:
    """A sync of RegionA by the service's admin, to the end: a real task to ask about."""
    service.cloud.purge_images()
    name = f"policy-{SUFFIX}"
    service.sync.add_image("Master", name, payload(name))
    admin = callers["service-admin"].token
    answer = service.call("POST", "/regions/RegionA", admin)
    assert answer.status_code == 200, answer.text
    task_id = str(answer.json()["taskId"])
    assert service.wait_task("RegionA", task_id, admin)["status"] == "synced"
    return task_id


def _endpoints(task_id: str) -> list[tuple[str, str, str]]:
    return [(method, path.format(task=task_id), rule) for (method, path), rule in RULES.items()]


def _audit_lines(service: LiveService) -> list[tuple[str, str]]:
    found = []
    for line in service.log_text().splitlines():
        match = AUDIT.search(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def _forbidden(rule: str) -> dict[str, object]:
    description = f"policy rule {rule} does not allow this token"
    return {"error": {"message": "Forbidden", "code": 403, "description": description}}


@pytest.mark.parametrize("label", ["domain-admin", "system-admin", "other-admin", "member"])
def test_an_admin_of_anything_else_is_refused_everywhere_with_nothing_started(
    service: LiveService, callers: dict[str, Caller], finished_task: str, label: str
) -> None:
    caller = callers[label]
    name = f"refused-{label}-{SUFFIX}"
    service.sync.add_image("Master", name, payload(name))
    tasks_before = service.db_rows("SELECT id, status FROM task ORDER BY id")
    for method, path, rule in _endpoints(finished_task):
        answer = service.call(method, path, caller.token)
        assert answer.status_code == 403, (method, path, answer.text)
        expected = (
            {"error": {"message": "Role is not admin", "code": 403}}
            if label == "member"
            else _forbidden(rule)
        )
        assert answer.json() == expected, (method, path)
    # Nothing started, nothing deleted, nothing uploaded.
    assert service.db_rows("SELECT id, status FROM task ORDER BY id") == tasks_before
    assert service.db_rows("SELECT count(*) FROM task_join")[0][0] == 0
    assert service.sync.named("RegionA", name) == []
    assert f"by {caller.audit}" not in service.log_text()
    refusals = [text for level, text in _audit_lines(service) if caller.audit in text]
    assert len(refusals) == len(RULES)
    assert all(text.startswith("Refused 403: ") for text in refusals)


def test_the_service_projects_admin_is_let_through_everywhere(
    service: LiveService, callers: dict[str, Caller], finished_task: str
) -> None:
    admin = callers["service-admin"].token
    service.cloud.purge_images()  # the POST below then has nothing to copy
    codes = {}
    for method, path, _rule in _endpoints(finished_task):
        if method == "POST":
            # A real sync (of nothing): let it end.
            answer = service.call(method, path, admin)
            service.wait_task("RegionA", answer.json()["taskId"], admin)
        else:
            answer = service.call(method, path, admin)
        codes[(method, path)] = answer.status_code
    assert set(codes.values()) == {200}, codes
    # The DELETE came last: the task is gone.
    assert service.call("GET", f"/regions/RegionA/tasks/{finished_task}", admin).status_code == 404


def test_a_repeated_bad_token_is_validated_once_per_worker_at_most(
    service: LiveService, callers: dict[str, Caller]
) -> None:
    service.wait_idle()  # no sync, so no Glance asking Keystone about tokens meanwhile
    log = service.cloud.log_path("keystone-A")
    before = _validations(log)
    garbage = f"gAAAAAgarbage-{uuid.uuid4().hex}"
    for _ in range(50):
        answer = service.call("GET", "/regions/RegionA", garbage)
        assert answer.status_code == 401, answer.text
    # uWSGI logs each request as it ends; wait for the first validation's line.
    deadline = time.monotonic() + 10
    while _validations(log) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    asked = _validations(log) - before
    assert 1 <= asked <= WORKERS, f"{asked} validations at Keystone for one bad token"
    # A good token is not kept out by the bad one's cache.
    assert service.call("GET", "/regions/RegionA", callers["service-admin"].token).ok


def _validations(log: Path) -> int:
    """Token validations Keystone answered (uWSGI's request log). The Glances' own
    validations are counted too, so a test counts only while no sync runs."""
    text = log.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if '"GET /v3/auth/tokens' in line)


def test_the_audit_trail_of_a_start_a_join_a_deletion_and_refusals(
    service: LiveService, callers: dict[str, Caller], faulty_cloud
) -> None:
    admin, second = callers["service-admin"], callers["second-admin"]
    outsider = callers["domain-admin"]
    service.wait_idle()
    faulty_cloud.purge_images()  # one image to sync, not the earlier tests' too
    name = f"audit-{SUFFIX}"
    service.sync.add_image("Master", name, payload(name))
    # While RegionB's Glance hangs the sync cannot end, so the second POST joins it.
    with faulty_cloud.glance_hanging("RegionB"):
        task_id = service.call("POST", "/regions/RegionB", admin.token).json()["taskId"]
        joined = service.call("POST", "/regions/RegionB", second.token).json()
        assert joined == {"taskId": task_id, "status": "syncing"}
        refused_post = service.call("POST", "/regions/RegionB", outsider.token)
        assert refused_post.status_code == 403
    task = service.wait_task("RegionB", task_id, admin.token)
    path = f"/regions/RegionB/tasks/{task_id}"
    assert service.call("GET", path, None).status_code == 401
    assert service.call("DELETE", path, outsider.token).status_code == 403
    [row] = service.db_rows(
        "SELECT requested_by, requested_by_id, requested_by_domain, requested_by_project_id,"
        " requested_by_project_name, region FROM task WHERE id = ?",
        task_id,
    )
    assert row == (admin.name, admin.user_id, "default", admin.project, "admin", "RegionB")
    joins = service.db_rows(
        "SELECT user_id, user_name, user_domain, project_id, project_name FROM task_join"
        " WHERE task_id = ?",
        task_id,
    )
    assert joins == [(second.user_id, second.name, "default", second.project, "admin")]
    assert set(task) == {
        "taskId",
        "status",
        "region",
        "message",
        "requestedBy",
        "created",
        "updated",
    }
    assert (task["taskId"], task["region"], task["requestedBy"]) == (task_id, "RegionB", "admin")
    assert ISO.match(task["created"]) and ISO.match(task["updated"])
    assert task["created"] <= task["updated"]
    assert service.call("DELETE", path, second.token).status_code == 200
    lines = [
        entry for entry in _audit_lines(service) if task_id in entry[1] or "RegionB" in entry[1]
    ]
    assert lines == [
        ("INFO", f"Task {task_id} started: sync of region RegionB by {admin.audit}"),
        ("INFO", f"Task {task_id} joined: sync of region RegionB by {second.audit}"),
        (
            "WARNING",
            "Refused 403: POST /regions/RegionB rule=glancesync:sync:start region=RegionB "
            f"task=- {outsider.audit}",
        ),
        (
            "WARNING",
            f"Refused 401: GET {path} rule=glancesync:task:get region=RegionB "
            f"task={task_id} user=- domain=- project=-",
        ),
        (
            "WARNING",
            f"Refused 403: DELETE {path} rule=glancesync:task:delete region=RegionB "
            f"task={task_id} {outsider.audit}",
        ),
        ("INFO", f"Task {task_id} of region RegionB deleted by {second.audit}"),
    ]


def test_the_log_holds_no_token(service: LiveService, callers: dict[str, Caller]) -> None:
    text = service.log_text() + service.output_text()
    for caller in callers.values():
        assert caller.token not in text


def test_invented_methods_do_not_grow_metrics(service: LiveService) -> None:
    def invented(count: int, start: int) -> None:
        for number in range(start, start + count):
            path = ("/", "/regions/RegionA", f"/regions/R{number}", f"/nowhere/{number}")[
                number % 4
            ]
            answer = requests.request(f"GS{number:05d}X", service.url + path, timeout=30)
            assert answer.status_code in (404, 405), (path, answer.status_code)

    invented(8, 0)  # the "other" series exist in every worker from here on
    before, before_series, before_other = _scrape(service)
    invented(300, 1000)
    after, after_series, after_other = _scrape(service)
    assert after_series == before_series
    assert after_other == before_other + 300
    assert len(after) - len(before) < 1024, (len(before), len(after))
    methods = {dict(labels).get("method") for _name, labels in after_series} - {None}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def _scrape(service: LiveService) -> tuple[str, set[tuple[str, tuple]], float]:
    """/metrics (scraped twice, so that the scrape itself is counted the same way)."""
    requests.get(f"{service.url}/metrics", timeout=30)
    text = requests.get(f"{service.url}/metrics", timeout=30).text
    series = set()
    other = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.add((sample.name, tuple(sorted(sample.labels.items()))))
            if (
                sample.name == "glancesync_http_requests_total"
                and sample.labels["method"] == "other"
            ):
                other += sample.value
    return text, series, other


# --------------------------------------------------------------------- an operator's rules

# Members of an allowed project may also read the status (the default rule stays in).
WIDENED = (
    '"glancesync:status:get": "rule:glancesync:admin or (role:member and allowed_project:True)"\n'
)
NARROWED = '"glancesync:task:delete": "!"\n'  # nobody deletes tasks through the API


def _write_rules(path: Path, text: str) -> None:
    # oslo.policy reads the file again when its mtime changes: make sure it does.
    mtime = path.stat().st_mtime if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    stamp = max(time.time(), mtime + 1)
    os.utime(path, (stamp, stamp))


@pytest.fixture(scope="module")
def operator_service(cloud, tmp_path_factory) -> Iterator[tuple[LiveService, Path]]:
    workdir = tmp_path_factory.mktemp("service-operator")
    rules = workdir / "policy.yaml"
    _write_rules(rules, WIDENED)
    project2 = cloud.keystones["A"].project_ids["project2"]
    settings = f"POLICY_FILE = {rules}\nALLOWED_PROJECTS = {project2}\nALLOW_SYSTEM_SCOPE = yes\n"
    live = LiveService(cloud, workdir, extra_settings=settings).start()
    try:
        yield live, rules
    finally:
        live.stop()


def test_an_operator_file_widens_a_rule_and_the_settings_add_scopes(
    operator_service: tuple[LiveService, Path], callers: dict[str, Caller]
) -> None:
    service, rules = operator_service
    _write_rules(rules, WIDENED)
    member = callers["member"].token
    for path in ("/regions/RegionA", "/status.json"):
        assert service.call("GET", path, member).status_code == 200, path
    # Only the status was widened.
    assert service.call("POST", "/regions/RegionA", member).json() == {
        "error": {"message": "Role is not admin", "code": 403}
    }
    assert service.call("GET", f"/regions/RegionA/tasks/{NO_TASK}", member).status_code == 403
    # ALLOWED_PROJECTS and ALLOW_SYSTEM_SCOPE: these admins are now GlanceSync's.
    for label in ("other-admin", "system-admin"):
        answer = service.call("GET", "/regions/RegionA", callers[label].token)
        assert answer.status_code == 200, (label, answer.text)
        missing = service.call("GET", f"/regions/RegionA/tasks/{NO_TASK}", callers[label].token)
        assert missing.status_code == 404, label
    # A domain-scoped token never, whatever the file and the settings say.
    refused = service.call("GET", "/regions/RegionA", callers["domain-admin"].token)
    assert refused.json() == _forbidden("glancesync:status:get")


def test_an_operator_file_narrows_a_rule(
    operator_service: tuple[LiveService, Path], callers: dict[str, Caller]
) -> None:
    service, rules = operator_service
    _write_rules(rules, NARROWED)  # read again by each worker: no restart
    admin = callers["service-admin"].token
    task_id = service.call("POST", "/regions/RegionA", admin).json()["taskId"]
    service.wait_task("RegionA", task_id, admin)
    path = f"/regions/RegionA/tasks/{task_id}"
    for _ in range(WORKERS):  # whichever worker answers
        refused = service.call("DELETE", path, admin)
        assert (refused.status_code, refused.json()) == (403, _forbidden("glancesync:task:delete"))
    assert service.call("GET", path, admin).status_code == 200
    assert service.db_rows("SELECT count(*) FROM task WHERE id = ?", task_id)[0][0] == 1
    # The widening of the file it replaced is gone.
    assert service.call("GET", "/regions/RegionA", callers["member"].token).status_code == 403
