"""sync.py's region locks through Redis on the real test cloud (Glance regions).

A run skips a Glance region another process holds, as lock_timeout says, and two runs
started together on the same regions, sharing one Redis, never both copy an image into
one region.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sync_cloud_support import CloudSync, payload

from tests.fixtures.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HOLDER = textwrap.dedent(
    """
    import sys
    from fiwareglancesync.regionlock import RegionLocks
    locks = RegionLocks(None, 60, describe=lambda: "pid 4242 (the other run)", url=sys.argv[1])
    with locks.hold(sys.argv[2], sys.argv[3]):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)
    return CloudSync(cloud, tmp_path)


def test_a_glance_region_another_process_holds_is_skipped_then_synced(
    sync: CloudSync, redis_server: RedisServer
):
    sync.add_image("Master", "co-one", payload("co-one"))
    sync.write_config(main={"coordination_url": redis_server.url, "lock_timeout": "0.5"})
    # What the Glance facade locks: one Keystone URL and region name.
    key = f"glance {sync.keystone_a.auth_url.rstrip('/')} RegionA"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url, key, "RegionA"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        skipped = sync.run("RegionA", "RegionB")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    assert skipped.status == 1, skipped.out
    assert (
        "WARNING:RegionA: skipped: another GlanceSync run (pid 4242 (the other run)) is "
        "synchronising this region; waited 0.5 s (lock_timeout)"
    ) in skipped.lines
    assert sync.named("RegionA", "co-one") == []
    assert len(sync.named("RegionB", "co-one")) == 1
    done = sync.run("RegionA")
    assert done.status == 0, done.out
    assert len(sync.named("RegionA", "co-one")) == 1


def test_two_runs_on_one_redis_never_both_copy_an_image_into_a_region(
    sync: CloudSync, redis_server: RedisServer, tmp_path: Path
):
    names = [f"co-pair-{number}" for number in range(3)]
    for name in names:
        sync.add_image("Master", name, payload(name, 512 * 1024))
    sync.write_config(main={"coordination_url": redis_server.url, "lock_timeout": "300"})
    environ = dict(os.environ, GLANCESYNC_CONFIG=str(sync.config_path))
    runs = []
    for number in range(2):
        workdir = tmp_path / f"run{number}"
        workdir.mkdir()
        runs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "sync.py"), "--parallel", "RegionA", "RegionB"],
                env=environ,
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    for region in ("RegionA", "RegionB"):
        found = sorted(image["name"] for image in sync.images(region))
        assert found == names, (region, outputs)
    assert sync.unfinished(("RegionA", "RegionB")) == []
