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
def sync(cloud, tmp_path, monkeypatch) -> Iterator[CloudSync]:
    # Every region whose Keystone runs starts empty (with Keystone B stopped, RegionC
    # cannot be reached, nor written to).
    cloud.purge_images(
        [r for r in cloud.regions if cloud.keystone_running(cloud.glances[r].keystone)]
    )
    monkeypatch.chdir(tmp_path)
    yield CloudSync(cloud, tmp_path)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


def refused(sync: CloudSync) -> str:
    return (
        f"Keystone {sync.keystone_b.auth_url} refused the credentials of user admin on project "
        "admin (HTTP 401): wrong user name, password, project or domain"
    )


def unreachable(sync: CloudSync) -> str:
    return f"cannot reach Keystone at {sync.keystone_b.auth_url} (connection refused)"


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


class _EveryMode:
    """The same checks, whichever way target other's Keystone fails (the subclass says)."""

    def break_keystone_b(self, sync: CloudSync) -> str:
        """Make target other's Keystone fail; return the cause its error lines must give."""
        raise NotImplementedError

    @pytest.mark.parametrize(
        "mode", MODES, ids=["sync", "dry-run", "show-status", "parallel", "backup"]
    )
    def test_the_other_targets_regions_still_run(self, sync, tmp_path, mode):
        sync.add_image("Master", "iso-img", payload("isolation"))
        cause = self.break_keystone_b(sync)
        run = sync.run(*mode, "RegionA", "other:")
        assert run.status == 1, run.out + run.err
        assert error_lines(run.out + run.err) == [
            f"ERROR:target other: its regions cannot be listed: {cause}"
        ]
        assert "Traceback" not in run.out + run.err
        assert "not-the-password" not in run.out + run.err
        check_region_a_done(sync, mode, run, tmp_path)

    def test_an_explicit_region_of_the_failing_target_is_named(self, sync):
        sync.add_image("Master", "iso-img", payload("isolation"))
        cause = self.break_keystone_b(sync)
        run = sync.run("other:RegionC", "RegionA")
        assert run.status == 1
        assert error_lines(run.out) == [f"ERROR:other:RegionC: {cause}"]
        assert "INFO:Region RegionA has finished" in run.lines
        assert len(sync.named("RegionA", "iso-img")) == 1


class TestWrongPassword(_EveryMode):
    """Target other is given a wrong password: Keystone B refuses it."""

    def break_keystone_b(self, sync: CloudSync) -> str:
        sync.write_config(other={"password": "not-the-password"})
        return refused(sync)


@pytest.fixture(scope="class")
def keystone_b_stopped(cloud) -> Iterator[None]:
    """Keystone B stopped once for a whole class of tests, and started again after it."""
    cloud.purge_images()  # RegionC too, while it can be reached
    cloud.stop_keystone("B")
    try:
        yield
    finally:
        cloud.reset_faults()


@pytest.mark.usefixtures("keystone_b_stopped")
class TestStoppedKeystone(_EveryMode):
    """Keystone B is stopped (once for the class: a restart costs seconds)."""

    def break_keystone_b(self, sync: CloudSync) -> str:
        assert not sync.cloud.keystone_running("B")
        return unreachable(sync)

    def test_show_regions_lists_the_targets_that_answer(self, sync):
        cause = self.break_keystone_b(sync)
        run = sync.run("--show-regions")
        assert run.status == 1
        assert run.lines == ["RegionA RegionB"]
        assert error_lines(run.err) == [
            f"ERROR:target other: its regions cannot be listed: {cause}"
        ]


def test_the_master_keystone_down_fails_every_region_in_one_line_each(sync, faulty_cloud):
    sync.cloud.stop_keystone("A")
    run = sync.run("RegionA", "RegionB", "other:RegionC")
    assert run.status == 1
    url = sync.keystone_a.auth_url
    assert error_lines(run.out) == [
        f"ERROR:RegionA: master region: cannot reach Keystone at {url} (connection refused)",
        f"ERROR:RegionB: master region: cannot reach Keystone at {url} (connection refused)",
        f"ERROR:other:RegionC: master region: cannot reach Keystone at {url} (connection refused)",
    ]
