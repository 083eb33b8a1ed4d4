"""regionlock.RegionLocks inside one process and over time, on the real backends.

Threads of one process (the service's sync threads) exclude each other on a region as
processes do, and one thread giving up never releases another's lock (with fcntl locks,
closing any descriptor of the file would). A lock held for longer than the Redis
driver's lock timeout stays held while its holder heartbeats.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fiwareglancesync.regionlock import RegionBusy, RegionLocks
from tests.fixtures.redis import RedisServer

WAIT = 60.0
PROBE = textwrap.dedent(
    """
    import sys
    from fiwareglancesync.regionlock import RegionBusy, RegionLocks
    locks = RegionLocks(sys.argv[1], 0, url=sys.argv[2] or None)
    try:
        with locks.hold(sys.argv[3], "Burgos"):
            print("free")
    except RegionBusy:
        print("held")
    """
)


def probe(lock_dir: Path, url: str | None, key: str) -> str:
    """Whether another process finds the region's lock free or held."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(lock_dir), url or "", key],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(params=["file", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "file":
        return None  # the default: file:// in lock_dir
    return request.getfixturevalue("redis_server").url


def test_threads_of_one_process_exclude_each_other_and_never_free_anothers_lock(
    url: str | None, tmp_path: Path
):
    lock_dir = tmp_path / "locks"
    key = f"threads {tmp_path}"
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        locks = RegionLocks(lock_dir, 0, describe=lambda: "the first thread", url=url)
        with locks.hold(key, "Burgos"):
            holding.set()
            done.wait(WAIT)
        locks.close()

    first = threading.Thread(target=hold)
    first.start()
    try:
        assert holding.wait(WAIT)
        second = RegionLocks(lock_dir, 0, url=url)
        with pytest.raises(RegionBusy) as raised, second.hold(key, "Burgos"):
            pass
        second.close()
        assert "(the first thread)" in str(raised.value)
        # The second thread gave up: the first one's lock is still held for everyone.
        assert probe(lock_dir, url, key) == "held"
    finally:
        done.set()
        first.join(WAIT)
    assert probe(lock_dir, url, key) == "free"


def test_a_redis_lock_outlives_the_drivers_lock_timeout_while_its_holder_beats(
    redis_server: RedisServer, tmp_path: Path
):
    url = f"{redis_server.url}?lock_timeout=1"
    key = f"long {tmp_path}"
    locks = RegionLocks(tmp_path, 0, url=url)
    with locks.hold(key, "Burgos"):
        time.sleep(4)  # four lock timeouts: only the heartbeats keep it
        assert probe(tmp_path, url, key) == "held"
    locks.close()
    assert probe(tmp_path, url, key) == "free"
