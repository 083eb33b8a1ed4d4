"""A target whose Keystone fails fails alone, on the real cloud, in every mode.

Target ``other`` (Keystone B) is given a wrong password, or Keystone B is stopped; the
regions of the master target must still be listed, synchronised and backed up, with one
short ERROR line naming the failing target or region and exit status 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sync_cloud_support import CloudSync, payload

MODES = [[], ["--dry-run"], ["--show-status"], ["--parallel"], ["--make-backup"]]


@pytest.fixture
def sync(faulty_cloud, tmp_path, monkeypatch) -> Iterator[CloudSync]:
    faulty_cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    yield CloudSync(faulty_cloud, tmp_path)
    faulty_cloud.reset_faults()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


def refused(sync: CloudSync) -> str:
    return (
        f"Keystone {sync.keystone_b.auth_url} refused the credentials of user admin on project "
        "admin (HTTP 401): wrong user name, password, project or domain"
    )


def unreachable(sync: CloudSync) -> str:
    return f"cannot reach Keystone at {sync.keystone_b.auth_url} (connection refused)"


def break_keystone_b(sync: CloudSync, how: str) -> str:
    """Make target other's Keystone fail; return the cause its error lines must give."""
    if how == "wrong password":
        sync.write_config(other={"password": "not-the-password"})
        return refused(sync)
    sync.cloud.stop_keystone("B")
    return unreachable(sync)


def check_region_a_done(sync: CloudSync, mode: list[str], run, tmp_path) -> None:
    if mode == ["--show-status"]:
        assert run.lines == ["pending_upload,RegionA,iso-img"]
    elif mode == ["--make-backup"]:
        (backup,) = tmp_path.glob("backup_glance_*")
        rows = (backup / "backup_Master.csv").read_text()
        assert ",iso-img," in rows
        assert (backup / "backup_RegionA.csv").exists()
    elif mode == ["--dry-run"]:
        assert "INFO:RegionA: Pending: iso-img (0 MB)" in run.lines
        assert sync.named("RegionA", "iso-img") == []
    else:
        assert len(sync.named("RegionA", "iso-img")) == 1


@pytest.mark.parametrize("how", ["wrong password", "stopped Keystone"])
@pytest.mark.parametrize(
    "mode", MODES, ids=["sync", "dry-run", "show-status", "parallel", "backup"]
)
def test_the_other_targets_regions_still_run(sync, tmp_path, how, mode):
    sync.add_image("Master", "iso-img", payload("isolation"))
    cause = break_keystone_b(sync, how)
    run = sync.run(*mode, "RegionA", "other:")
    assert run.status == 1, run.out + run.err
    assert error_lines(run.out + run.err) == [
        f"ERROR:target other: its regions cannot be listed: {cause}"
    ]
    assert "Traceback" not in run.out + run.err
    assert "not-the-password" not in run.out + run.err
    check_region_a_done(sync, mode, run, tmp_path)


@pytest.mark.parametrize("how", ["wrong password", "stopped Keystone"])
def test_an_explicit_region_of_the_failing_target_is_named(sync, how):
    sync.add_image("Master", "iso-img", payload("isolation"))
    cause = break_keystone_b(sync, how)
    run = sync.run("other:RegionC", "RegionA")
    assert run.status == 1
    assert error_lines(run.out) == [f"ERROR:other:RegionC: {cause}"]
    assert "INFO:Region RegionA has finished" in run.lines
    assert len(sync.named("RegionA", "iso-img")) == 1


def test_show_regions_lists_the_targets_that_answer(sync):
    cause = break_keystone_b(sync, "stopped Keystone")
    run = sync.run("--show-regions")
    assert run.status == 1
    assert run.lines == ["RegionA RegionB"]
    assert error_lines(run.err) == [f"ERROR:target other: its regions cannot be listed: {cause}"]


def test_the_master_keystone_down_fails_every_region_in_one_line_each(sync):
    sync.cloud.stop_keystone("A")
    run = sync.run("RegionA", "RegionB", "other:RegionC")
    assert run.status == 1
    url = sync.keystone_a.auth_url
    assert error_lines(run.out) == [
        f"ERROR:RegionA: master region: cannot reach Keystone at {url} (connection refused)",
        f"ERROR:RegionB: master region: cannot reach Keystone at {url} (connection refused)",
        f"ERROR:other:RegionC: master region: cannot reach Keystone at {url} (connection refused)",
    ]
