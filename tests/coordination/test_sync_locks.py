"""sync.py's region locks through coordination_url, between real processes.

With a Redis URL, two runs on one region behave exactly as two runs on one host did with
flock: the second waits up to lock_timeout, then plans again or skips with the warning
naming the other run. The default (no coordination_url) is file:// in lock_dir, the
lock files of before. A backend that is down fails each region with one line and syncs
nothing.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from fiwareglancesync.cli import main
from fiwareglancesync.errors import ExitStatus
from fiwareglancesync.facades.mock_facade import JournalStore
from fiwareglancesync.mock import main as mock_main
from tests.coordination.conftest import EXAMPLE_CONFIG, EXAMPLE_SCENARIO, ROOT
from tests.fixtures.redis import RedisServer, free_port

HOLDER = textwrap.dedent(
    """
    import sys
    from fiwareglancesync.regionlock import RegionLocks
    url = sys.argv[1] or None
    locks = RegionLocks(sys.argv[2], 60, describe=lambda: "pid 4242 (the other run)", url=url)
    with locks.hold(sys.argv[3], "Burgos"):
        print("held", flush=True)
        sys.stdin.readline()  # until the test lets go (or kills it)
    """
)


def hold_lock(url: str | None, lock_dir: Path, store: Path) -> subprocess.Popen[str]:
    """Another GlanceSync process, holding region Burgos's lock until its standard input
    is closed (it then releases the lock) or it is killed."""
    key = f"mock {store} Burgos"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url or "", str(lock_dir), key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def run(argv: list[str], store: Path) -> tuple[int, str, str]:
    environ = {
        "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
    }
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv, environ=environ)
    return status, out.getvalue(), err.getvalue()


def sync_process(argv: list[str], store: Path) -> subprocess.Popen[str]:
    environ = dict(
        os.environ, GLANCESYNC_CONFIG=str(EXAMPLE_CONFIG), GLANCESYNC_MOCKPERSISTENT_PATH=str(store)
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "sync.py"), *argv],
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
    )


def names_in(store: Path, region: str) -> set[str]:
    return {image.name for image in JournalStore(store).read(region)}


SKIPPED = (
    "WARNING:Burgos: skipped: another GlanceSync run (pid 4242 (the other run)) is "
    "synchronising this region; waited 0.5 s (lock_timeout)"
)


@pytest.mark.parametrize("backend", ["redis", "file", "default"])
def test_a_region_another_process_holds_is_skipped_as_with_flock(
    backend: str, store: Path, tmp_path: Path, request: pytest.FixtureRequest
):
    lock_dir = tmp_path / "locks"
    url = {
        "redis": lambda: request.getfixturevalue("redis_server").url,
        "file": lambda: f"file://{lock_dir}",
        "default": lambda: None,
    }[backend]()
    config = ["--config", f"main.lock_dir={lock_dir}", "main.lock_timeout=0.5"]
    if url:
        config.append(f"main.coordination_url={url}")
    holder = hold_lock(url, lock_dir, store)
    try:
        status, out, _ = run(["Burgos", "Leon", *config], store)
        shown = run(["--show-status", "Burgos", *config], store)  # never waits
    finally:
        holder.kill()
        holder.wait()
    assert status == ExitStatus.REGION_FAILED
    assert SKIPPED in out.splitlines()
    assert "INFO:Region Leon has finished" in out.splitlines()
    assert shown[0] == ExitStatus.OK and "pending_upload,Burgos,cirros_kernel" in shown[1]
    assert "cirros_kernel" not in names_in(store, "Burgos")
    assert "base_ubuntu_22.04" in names_in(store, "Leon")


def test_the_holders_line_is_quoted_from_another_processes_real_description(
    redis_server: RedisServer, store: Path, tmp_path: Path
):
    # The lock held by a real sync.py-like process, with its own description.
    script = HOLDER.replace('describe=lambda: "pid 4242 (the other run)", ', "")
    key = f"mock {store} Burgos"
    holder = subprocess.Popen(
        [sys.executable, "-c", script, redis_server.url, str(tmp_path), key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        config = ["--config", f"main.coordination_url={redis_server.url}", "main.lock_timeout=0"]
        status, out, _ = run(["Burgos", *config], store)
    finally:
        holder.kill()
        holder.wait()
    assert status == ExitStatus.REGION_FAILED
    assert f"WARNING:Burgos: skipped: another GlanceSync run (pid {holder.pid} on " in out


def sorted_names(store: Path, region: str) -> list[str]:
    if not store.exists():
        assert mock_main(["--path", str(store), str(EXAMPLE_SCENARIO)]) == 0
    return sorted(image.name for image in JournalStore(store).read(region))


def test_two_runs_on_redis_wait_for_each_other_and_upload_nothing_twice(
    redis_server: RedisServer, store: Path, tmp_path: Path
):
    config = ["--config", f"main.coordination_url={redis_server.url}", "main.lock_timeout=60"]
    first, second = (sync_process(["Burgos", *config], store) for _ in range(2))
    outputs = [process.communicate(timeout=120)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0]
    # The second one planned again once it held the lock, and found the work done.
    assert sum("Region is synchronized." in output for output in outputs) == 1
    # What they left is what one run alone leaves: nothing was uploaded twice.
    alone = tmp_path / "alone"
    assert mock_main(["--path", str(alone), str(EXAMPLE_SCENARIO)]) == 0
    assert run(["Burgos"], alone)[0] == ExitStatus.OK
    assert sorted_names(store, "Burgos") == sorted_names(alone, "Burgos")
    assert len(sorted_names(store, "Burgos")) > len(sorted_names(tmp_path / "fresh", "Burgos"))


def test_a_coordination_backend_that_is_down_syncs_nothing_and_says_so_once_per_region(
    store: Path,
):
    url = f"redis://:hunter2@127.0.0.1:{free_port()}"
    before = {region: names_in(store, region) for region in ("Burgos", "Leon")}
    status, out, err = run(["Burgos", "Leon", "--config", f"main.coordination_url={url}"], store)
    assert status == ExitStatus.REGION_FAILED
    lines = [line for line in out.splitlines() if "coordination backend" in line]
    assert [line.split(":", 2)[1] for line in lines] == ["Burgos", "Leon"]
    for line in lines:
        assert line.startswith("ERROR:")
        assert "cannot start" in line and "the region was not synchronised (no region lock)" in line
    assert "hunter2" not in out + err and "Traceback" not in out + err
    assert {region: names_in(store, region) for region in ("Burgos", "Leon")} == before
    # What changes nothing takes no lock, and works without the backend.
    shown = run(["--show-status", "Burgos", "--config", f"main.coordination_url={url}"], store)
    assert shown[0] == ExitStatus.OK


def test_the_lock_of_a_killed_run_expires_with_its_heartbeats_on_redis(
    redis_server: RedisServer, store: Path, tmp_path: Path
):
    # tooz's Redis driver keeps a lock while its holder heartbeats; a killed holder's
    # lock lapses after the driver's lock_timeout (here 2 s instead of 30).
    url = f"{redis_server.url}?lock_timeout=2&membership_timeout=2"
    holder = hold_lock(url, tmp_path / "unused", store)
    holder.kill()
    holder.wait()
    config = ["--config", f"main.coordination_url={url}", "main.lock_timeout=60"]
    status, out, _ = run(["Burgos", *config], store)
    assert status == ExitStatus.OK, out
    assert "cirros_kernel" in names_in(store, "Burgos")
