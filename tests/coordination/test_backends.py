"""coordination.Coordinator on real backends: tooz's file driver and a real Redis.

Locks exclude each other, groups list their members, and the partitioner splits the
regions between the members with no overlap and moves a member's regions to the others
when it leaves: by stopping, or (Redis) by dying and missing its heartbeats.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from fiwareglancesync.coordination import CoordinationUnavailable, Coordinator, Partition
from tests.fixtures.redis import RedisServer, free_port

REGIONS = [f"Region{number:02d}" for number in range(24)]
PATIENCE = 60.0  # seconds a test waits for something to happen before failing


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail (not time) if it never does."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.1)


@pytest.fixture
def members(backend_url: str) -> Iterator[Callable[[str], Coordinator]]:
    started: list[Coordinator] = []

    def member(name: str) -> Coordinator:
        coordinator = Coordinator(backend_url, name, heartbeat_timeout=5).start()
        started.append(coordinator)
        return coordinator

    yield member
    for coordinator in started:
        coordinator.stop()


def group_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_a_lock_held_by_one_member_is_refused_to_another(members):
    first, second = members("a"), members("b")
    name = f"{uuid.uuid4().hex}.lock"
    lock_a, lock_b = first.lock(name), second.lock(name)
    assert first.try_acquire(lock_a)
    assert not second.try_acquire(lock_b)
    first.release(lock_a)
    assert second.try_acquire(lock_b)
    second.release(lock_b)


def test_group_members_are_listed_until_they_leave(members):
    first, second = members("a"), members("b")
    group = group_name()
    assert first.members(group) == set()
    first.join_group(group, {"holder": "first"})
    second.join_group(group)
    second.join_group(group)  # joining twice is not an error
    assert first.members(group) == {"a", "b"}
    assert second.capabilities(group, "a") == {"holder": "first"}
    second.leave_group(group)
    assert first.members(group) == {"a"}


def owned_by_each(partitions: dict[str, Partition]) -> dict[str, set[str]]:
    return {name: set(partition.owned(REGIONS)) for name, partition in partitions.items()}


def follow(*coordinators: Coordinator) -> None:
    for coordinator in coordinators:
        coordinator.run_watchers()


def test_two_members_split_the_regions_with_no_overlap_and_one_takes_all_when_the_other_stops(
    members,
):
    first, second = members("a"), members("b")
    group = group_name()
    partitions = {"a": first.join_partition(group), "b": second.join_partition(group)}

    def split() -> bool:
        follow(first, second)
        owned = owned_by_each(partitions)
        return owned["a"] | owned["b"] == set(REGIONS) and bool(owned["a"]) and bool(owned["b"])

    eventually(split, "both members owning regions")
    owned = owned_by_each(partitions)
    assert owned["a"].isdisjoint(owned["b"])
    # Both members compute the same owner for every region.
    assert partitions["a"].assignment(REGIONS) == partitions["b"].assignment(REGIONS)

    second.stop()

    def first_owns_all() -> bool:
        follow(first)
        return set(partitions["a"].owned(REGIONS)) == set(REGIONS)

    eventually(first_owns_all, "the remaining member owning every region")


def test_a_new_member_takes_its_share(members):
    first = members("a")
    group = group_name()
    alone = first.join_partition(group)
    follow(first)
    assert set(alone.owned(REGIONS)) == set(REGIONS)
    second = members("b")
    joined = second.join_partition(group)

    def shared() -> bool:
        follow(first, second)
        mine, theirs = set(alone.owned(REGIONS)), set(joined.owned(REGIONS))
        return bool(theirs) and mine.isdisjoint(theirs) and mine | theirs == set(REGIONS)

    eventually(shared, "the newcomer owning a share of the regions")


MEMBER = textwrap.dedent(
    """
    import sys, time
    from fiwareglancesync.coordination import Coordinator
    url, name, group = sys.argv[1:4]
    coordinator = Coordinator(url, name, heartbeat_timeout=2).start()
    coordinator.join_partition(group)
    print("joined", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_member_drops_out_after_its_heartbeat_timeout(redis_server: RedisServer):
    group = group_name()
    survivor = Coordinator(redis_server.url, "survivor", heartbeat_timeout=2).start()
    process = subprocess.Popen(
        [sys.executable, "-c", MEMBER, redis_server.url, "doomed", group],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "joined\n"
        partition = survivor.join_partition(group)

        def doomed_owns_some() -> bool:
            follow(survivor)
            return bool(set(REGIONS) - set(partition.owned(REGIONS)))

        eventually(doomed_owns_some, "the other member owning regions")
        assert survivor.members(group) == {"survivor", "doomed"}
        os.kill(process.pid, signal.SIGKILL)  # no goodbye: only its heartbeats stop
        process.wait()

        def survivor_owns_all() -> bool:
            follow(survivor)
            return set(partition.owned(REGIONS)) == set(REGIONS)

        eventually(survivor_owns_all, "the survivor owning every region")
        assert survivor.members(group) == {"survivor"}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        survivor.stop()


def test_a_backend_that_is_down_is_one_line_naming_it_without_its_password():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(CoordinationUnavailable) as raised:
        Coordinator(url, "a").start()
    text = str(raised.value)
    assert text.startswith(f"coordination backend redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "cannot start" in text and "hunter2" not in text and "\n" not in text


def test_a_backend_that_went_away_and_came_back_serves_its_members_again(
    own_redis: RedisServer,
):
    coordinator = Coordinator(own_redis.url, "a").start()
    try:
        lock = coordinator.lock("lost.lock")
        own_redis.stop()
        with pytest.raises(CoordinationUnavailable):
            Coordinator(own_redis.url, "b").start()
        own_redis.start()  # the same port: a restarted server
        assert coordinator.try_acquire(lock)  # the old member reconnects by itself
        coordinator.release(lock)
    finally:
        coordinator.stop()


def test_a_url_no_backend_has_is_refused_before_anything_is_tried():
    with pytest.raises(CoordinationUnavailable) as raised:
        Coordinator("nosuch://user:hunter2@host", "a").start()
    assert str(raised.value).startswith("coordination_url: unknown coordination backend 'nosuch'")
    assert "hunter2" not in str(raised.value)
