"""Application credentials and clouds.yaml on the real test cloud, through sync.py.

Credentials are made in both Keystones as an operator makes them, and given to
GlanceSync as an operator would: a clouds.yaml with the secrets in secure.yaml, OS_CLOUD
with OS_CLIENT_CONFIG_FILE, or the plugin's options straight in glancesync.conf. Then
the limits: a credential whose access rules allow only reads, one with the reader role
only, a revoked one and an expired one, each failing its own target's regions in one
line while the other target goes on, with no secret anywhere.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sync_cloud_support import CloudSync, payload

MASTER_REGIONS = ("RegionA", "RegionB")
EVERY_TARGET = ("master:", "other:")
READ_IMAGES = [
    {"service": "image", "method": "GET", "path": "/v2/images"},
    {"service": "image", "method": "GET", "path": "/v2/images/**"},
    {"service": "image", "method": "GET", "path": "/v2/schemas/**"},
    {"service": "image", "method": "GET", "path": "/v2/info/**"},
]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


@pytest.fixture(scope="module")
def credentials(cloud):
    """One unrestricted application credential of each Keystone's admin."""
    made = {
        "A": cloud.application_credential("gs-sync-a", keystone="A"),
        "B": cloud.application_credential("gs-sync-b", keystone="B"),
    }
    return made


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    return CloudSync(cloud, tmp_path)


def clouds_yaml(workdir: Path, entries: dict[str, dict[str, str]]) -> dict[str, str]:
    """clouds.yaml with every secret moved to secure.yaml; the variables that find them."""
    public, secure = ["clouds:"], ["clouds:"]
    for name, auth in entries.items():
        auth_type = auth.pop("auth_type", "v3applicationcredential")
        public += [f"  {name}:", f"    auth_type: {auth_type}", "    auth:"]
        secure += [f"  {name}:", "    auth:"]
        for key, value in auth.items():
            (secure if key.endswith(("secret", "password")) else public).append(
                f"      {key}: '{value}'"
            )
    (workdir / "clouds.yaml").write_text("\n".join(public) + "\n")
    (workdir / "secure.yaml").write_text("\n".join(secure) + "\n")
    return {
        "OS_CLIENT_CONFIG_FILE": str(workdir / "clouds.yaml"),
        "OS_CLIENT_SECURE_FILE": str(workdir / "secure.yaml"),
    }


def app_auth(sync: CloudSync, credential) -> dict[str, str]:
    keystone = sync.cloud.keystones[credential.keystone]
    return {
        "auth_url": keystone.auth_url,
        "application_credential_id": credential.id,
        "application_credential_secret": credential.secret,
    }


NO_PASSWORD = {"credential": "", "user": "", "password": "", "keystone_url": "", "tenant": ""}


def use_clouds(sync: CloudSync, master: str | None = "fed-a", other: str = "fed-b") -> None:
    sync.write_config(
        master={**NO_PASSWORD, **({"cloud": master} if master else {})},
        other={**NO_PASSWORD, "cloud": other},
    )


def test_both_targets_sync_through_clouds_yaml_and_secure_yaml(sync, credentials):
    variables = clouds_yaml(
        sync.workdir,
        {"fed-a": app_auth(sync, credentials["A"]), "fed-b": app_auth(sync, credentials["B"])},
    )
    use_clouds(sync)
    master = sync.add_image("Master", "ac-base", payload("ac-base"))
    metrics = sync.workdir / "glancesync.prom"
    run = sync.run(
        "--debug", "--metrics-file", str(metrics), *EVERY_TARGET, environ=sync.environ(**variables)
    )
    assert run.status == 0, run.out + run.err
    for region in (*MASTER_REGIONS, "RegionC"):
        copy = sync.one(region, "ac-base")
        assert copy["status"] == "active" and copy["checksum"] == master["checksum"]
    # The owner rules use the project the credential is scoped to: the admin projects.
    assert sync.one("RegionA", "ac-base")["owner"] == sync.keystone_a.admin_project_id
    assert sync.one("RegionC", "ac-base")["owner"] == sync.keystone_b.admin_project_id
    status = sync.status_rows(*EVERY_TARGET, environ=sync.environ(**variables))
    assert any("ac-base" in row and "ok" in row for row in status)
    backup = sync.run("--make-backup", *EVERY_TARGET, environ=sync.environ(**variables))
    assert backup.status == 0, backup.out + backup.err
    written = [*sync.workdir.glob("backup_glance_*/*"), metrics]
    assert len(written) > 3
    everything = run.out + run.err + "".join(path.read_text() for path in written)
    for secret in (credentials["A"].secret, credentials["B"].secret):
        assert secret not in everything
    assert "gAAAAA" not in everything  # no Fernet token either


def test_os_cloud_names_the_master_cloud(sync, credentials):
    variables = clouds_yaml(sync.workdir, {"fed-a": app_auth(sync, credentials["A"])})
    sync.write_config(master=NO_PASSWORD)
    sync.add_image("Master", "ac-env", payload("ac-env"))
    run = sync.run("RegionA", environ=sync.environ(OS_CLOUD="fed-a", **variables))
    assert run.status == 0, run.out + run.err
    assert sync.one("RegionA", "ac-env")["status"] == "active"


def test_application_credentials_straight_in_glancesync_conf(sync, credentials):
    by_id = {"auth_type": "v3applicationcredential", **app_auth(sync, credentials["A"])}
    by_name = {
        "auth_type": "v3applicationcredential",
        "keystone_url": sync.keystone_b.auth_url,
        "application_credential_name": credentials["B"].name,
        "user": "admin",
        "application_credential_secret": credentials["B"].secret,
    }
    sync.write_config(master={**NO_PASSWORD, **by_id}, other={**NO_PASSWORD, **by_name})
    sync.add_image("Master", "ac-conf", payload("ac-conf"))
    run = sync.run(*EVERY_TARGET)
    assert run.status == 0, run.out + run.err
    assert "unknown option" not in run.out + run.err
    assert {sync.one(region, "ac-conf")["status"] for region in ("RegionA", "RegionC")} == {
        "active"
    }


def test_a_read_only_credential_shows_the_status_and_a_sync_fails_in_one_line(
    sync, cloud, credentials
):
    sync.add_image("Master", "ac-ro", payload("ac-ro"))
    reader = cloud.application_credential("gs-reader", roles=["reader"])
    rules = cloud.application_credential("gs-read-rules", access_rules=READ_IMAGES)
    full = app_auth(sync, credentials["A"])
    variables = clouds_yaml(
        sync.workdir,
        {"full": full, "reader": app_auth(sync, reader), "rules": app_auth(sync, rules)},
    )
    sync.write_config(master={**NO_PASSWORD, "cloud": "full"})
    wanted = sync.status_rows("RegionA", environ=sync.environ(**variables))
    for limited in ("reader", "rules"):
        sync.write_config(master={**NO_PASSWORD, "cloud": limited})
        assert sync.status_rows("RegionA", environ=sync.environ(**variables)) == wanted
    sync.write_config(master={**NO_PASSWORD, "cloud": "reader"})
    run = sync.run("RegionA", environ=sync.environ(**variables))
    assert run.status == 1
    assert error_lines(run.out + run.err) == [
        "ERROR:RegionA: creating image ac-ro: forbidden (HTTP 403): 403 Forbidden: You are not "
        "authorized to complete add_image action."
    ]
    sync.write_config(master={**NO_PASSWORD, "cloud": "rules"})
    run = sync.run("RegionA", environ=sync.environ(**variables))
    assert run.status == 1
    assert error_lines(run.out + run.err) == [
        "ERROR:RegionA: creating image ac-ro: not authorised (HTTP 401): the token was "
        "refused (or outside the access rules of the application credential)"
    ]
    assert "Traceback" not in run.out + run.err
    assert sync.named("RegionA", "ac-ro") == []


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_dead_credential_fails_its_target_only(sync, cloud, credentials, how):
    sync.add_image("Master", f"ac-{how}", payload(how))
    if how == "revoked":
        dead = cloud.application_credential("gs-revoked", keystone="B")
        cloud.delete_application_credential(dead)
        why = "it no longer exists (deleted or revoked)"
    else:
        soon = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=2)
        dead = cloud.application_credential("gs-expired", keystone="B", expires_at=soon)
        time.sleep(3)
        why = "expired, revoked, or a wrong secret"
    variables = clouds_yaml(
        sync.workdir, {"fed-a": app_auth(sync, credentials["A"]), "fed-b": app_auth(sync, dead)}
    )
    use_clouds(sync)
    run = sync.run("--debug", *EVERY_TARGET, environ=sync.environ(**variables))
    assert run.status == 1
    assert error_lines(run.out + run.err) == [
        f"ERROR:target other: its regions cannot be listed: Keystone {sync.keystone_b.auth_url}: "
        f"HTTP 401: application credential {dead.id} refused: {why}"
    ]
    for region in MASTER_REGIONS:
        assert sync.one(region, f"ac-{how}")["status"] == "active"
    assert "Traceback" not in run.out + run.err
    assert dead.secret not in run.out + run.err
    assert credentials["A"].secret not in run.out + run.err


SYNC_IMAGES = [
    {"service": "image", "method": method, "path": "/v2/**"}
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
]


def test_a_credential_confined_to_the_image_service_syncs(sync, cloud):
    """The documented sync credential: access rules for Glance's API, nothing else."""
    master = sync.add_image("Master", "ac-rules", payload("ac-rules"))
    confined = cloud.application_credential("gs-sync-rules", access_rules=SYNC_IMAGES)
    variables = clouds_yaml(sync.workdir, {"confined": app_auth(sync, confined)})
    sync.write_config(master={**NO_PASSWORD, "cloud": "confined"})
    run = sync.run(*MASTER_REGIONS, environ=sync.environ(**variables))
    assert run.status == 0, run.out + run.err
    for region in MASTER_REGIONS:
        assert sync.one(region, "ac-rules")["checksum"] == master["checksum"]
