"""The pure parts of coordination.py: URLs, their redaction, options, the region split."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from fiwareglancesync import coordination
from fiwareglancesync.coordination import (
    assign,
    driver_options,
    file_directory,
    file_url,
    redact,
    url_problem,
)

REGIONS = [f"Region{number:02d}" for number in range(40)]


def test_the_default_url_is_a_file_url_in_the_default_lock_directory():
    expected = Path(tempfile.gettempdir()) / "glancesync-locks"
    assert file_url(None) == f"file://{expected}"
    assert file_url("/var/lock/glancesync") == "file:///var/lock/glancesync"
    assert file_directory(file_url("/var/lock/glancesync")) == Path("/var/lock/glancesync")
    assert file_directory("redis://127.0.0.1:6379") is None


def test_tooz_backends_are_listed_from_the_installed_tooz():
    names = coordination.backends()
    assert {"file", "redis", "zookeeper", "etcd3+http", "memcached"} <= set(names)


@pytest.mark.parametrize(
    "url",
    [
        "file:///var/lock/glancesync",
        "file:///tmp/locks?timeout=5",
        "redis://127.0.0.1:6379",
        "redis://:secret@127.0.0.1:6379?db=2",
        "zookeeper://zk1:2181",
        "etcd3+http://127.0.0.1:2379",
        "REDIS://127.0.0.1",
    ],
)
def test_good_urls_have_no_problem(url):
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:6379", "not a URL of a coordination backend"),
        ("/var/lock/glancesync", "not a URL of a coordination backend"),
        ("rediss-typo://127.0.0.1", "unknown coordination backend 'rediss-typo' (tooz offers: "),
        ("file://relative/dir", "a file:// URL names an absolute directory"),
        ("file://", "a file:// URL names an absolute directory"),
        ("redis://", "a redis:// URL names its server"),
        ("redis://127.0.0.1:port", "the port of the redis:// URL is not a number"),
        ("redis://127.0.0.1:99999", "the port of the redis:// URL is not a number"),
    ],
)
def test_bad_urls_are_one_problem_each(url, problem):
    found = url_problem(url)
    assert found is not None and found.startswith(problem)


def test_a_problem_never_quotes_the_url_it_may_hold_a_password():
    found = url_problem("nosuch://user:hunter2@host:1")
    assert found is not None and "hunter2" not in found


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:hunter2@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
        ("redis://admin:hunter2@db:6379/0", "redis://admin:***@db:6379/0"),
        ("redis://admin@db:6379", "redis://admin@db:6379"),
        ("redis://db?password=hunter2&db=1", "redis://db?password=***&db=1"),
        ("file:///var/lock/gs", "file:///var/lock/gs"),
    ],
)
def test_redacted_urls_keep_everything_but_the_secrets(url, shown):
    assert redact(url) == shown


def test_driver_options_make_members_and_locks_expire_with_the_heartbeat_timeout():
    assert driver_options(None) == {}
    assert driver_options(10) == {"membership_timeout": "10", "lock_timeout": "10"}
    assert driver_options(2.5) == {"membership_timeout": "3", "lock_timeout": "3"}
    assert driver_options(0.1) == {"membership_timeout": "1", "lock_timeout": "1"}


def test_every_region_has_one_owner_among_the_members():
    owners = assign(REGIONS, ["host-a/1", "host-b/2"])
    assert set(owners) == set(REGIONS)
    assert set(owners.values()) == {"host-a/1", "host-b/2"}


def test_the_split_is_the_same_whoever_computes_it():
    assert assign(REGIONS, ["a", "b", "c"]) == assign(reversed(REGIONS), ["c", "a", "b"])


def test_a_member_leaving_moves_only_its_own_regions():
    before = assign(REGIONS, ["a", "b", "c"])
    after = assign(REGIONS, ["a", "b"])
    moved = {region for region in REGIONS if before[region] != after[region]}
    assert moved == {region for region in REGIONS if before[region] == "c"}
    assert set(after.values()) == {"a", "b"}


def test_no_member_owns_nothing():
    assert assign(REGIONS, []) == {}


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("redis://:pw@cache", ("cache", 6379)),
        ("zookeeper://zk", ("zk", 2181)),
        ("etcd3+http://etcd:2380", ("etcd", 2380)),
        ("zookeeper://zk1:2181,zk2:2181", None),
        ("file:///var/lock/gs", None),
        ("redis:///run/redis.sock", None),
    ],
)
def test_the_probe_tries_the_one_server_a_url_names(url, address):
    assert coordination.probe_address(url) == address


def test_several_zookeeper_servers_are_a_good_url():
    assert url_problem("zookeeper://zk1:2181,zk2:2181") is None


class _EmptyRing:
    def members_for_object(self, region):
        return set()


class _Me:
    member_id = "me"


def test_a_partition_with_no_member_left_owns_nothing_and_names_no_owner():
    partition = coordination.Partition(_Me(), _EmptyRing())
    assert partition.owner("Burgos") == ""
    assert partition.owned(["Burgos", "Leon"]) == []
