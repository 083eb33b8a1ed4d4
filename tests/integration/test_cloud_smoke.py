"""The test cloud itself works: Keystones, catalogs, Glances, policies, faults."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc

from tests.cloud.cloud import TestCloud

SMALL = 8 * 1024


def _name(prefix: str) -> str:
    # The cloud is shared by the session: unique names keep tests independent.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _upload_raw(client: Any, name: str, data: bytes, **fields: Any) -> Any:
    image = client.images.create(name=name, disk_format="raw", container_format="bare", **fields)
    client.images.upload(image["id"], io.BytesIO(data), image_size=len(data))
    return client.images.get(image["id"])


@pytest.fixture
def master_admin(cloud: TestCloud) -> Iterator[Any]:
    """Admin glanceclient on Master; deletes the images the test created there."""
    client = cloud.glance_client(region="Master")
    before = {image["id"] for image in client.images.list()}
    yield client
    for image in list(client.images.list()):
        if image["id"] not in before:
            client.images.delete(image["id"])


def test_both_keystones_issue_tokens(cloud: TestCloud) -> None:
    for name in ("A", "B"):
        session = cloud.keystone_session(name)
        assert session.get_token()
        assert session.get_project_id() == cloud.keystones[name].admin_project_id
    user2 = cloud.keystone_session("A", user="user2")
    assert user2.get_project_id() == cloud.keystone_a.project_ids["project2"]


def test_bad_password_is_refused(cloud: TestCloud) -> None:
    session = cloud.keystone_session("A", password="wrong")
    with pytest.raises(ksa_exc.Unauthorized):
        session.get_token()


def _image_endpoints(cloud: TestCloud, keystone: str) -> dict[str, str]:
    session = cloud.keystone_session(keystone)
    catalog = session.auth.get_access(session).service_catalog
    endpoints = catalog.get_endpoints(service_type="image", interface="public")["image"]
    return {endpoint["region_id"]: endpoint["url"] for endpoint in endpoints}


def test_catalogs_list_the_image_service_per_region(cloud: TestCloud) -> None:
    in_a = _image_endpoints(cloud, "A")
    in_b = _image_endpoints(cloud, "B")
    assert sorted(in_a) == ["Master", "RegionA", "RegionB"]
    assert sorted(in_b) == ["RegionC"]
    assert {**in_a, **in_b} == cloud.glance_urls
    for url in cloud.glance_urls.values():
        assert url.startswith("http://127.0.0.1:")
        assert url.count("/") == 2  # no path, no version suffix


def test_upload_makes_an_active_image_with_md5_checksum(
    cloud: TestCloud, master_admin: Any
) -> None:
    data = os.urandom(SMALL)
    image = _upload_raw(master_admin, _name("smoke"), data)
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert image["owner"] == cloud.keystone_a.admin_project_id
    assert b"".join(master_admin.images.data(image["id"])) == data


def test_upload_of_several_mib_works(master_admin: Any) -> None:
    # Regression guard for uWSGI's chunked-input-limit: glanceclient sends 1 MiB chunks.
    data = os.urandom(3 * 1024 * 1024 + 5)
    image = _upload_raw(master_admin, _name("big"), data)
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(data).hexdigest()


def test_admin_publishes_and_other_project_sees_it(cloud: TestCloud, master_admin: Any) -> None:
    public = _upload_raw(master_admin, _name("public"), b"p" * SMALL, visibility="public")
    private = _upload_raw(master_admin, _name("private"), b"q" * SMALL)
    assert public["visibility"] == "public"
    user2 = cloud.glance_client(region="Master", user="user2")
    seen = {image["id"] for image in user2.images.list()}
    assert public["id"] in seen
    assert private["id"] not in seen


def test_members_cannot_publish_but_own_their_images(cloud: TestCloud, master_admin: Any) -> None:
    member = cloud.glance_client(region="Master", user="member1")
    with pytest.raises(glance_exc.HTTPForbidden):
        member.images.create(
            name=_name("nope"), disk_format="raw", container_format="bare", visibility="public"
        )
    user2 = cloud.glance_client(region="Master", user="user2")
    mine = _upload_raw(user2, _name("project2"), b"u" * SMALL)
    assert mine["owner"] == cloud.keystone_a.project_ids["project2"]
    # An admin token lists other projects' private images too: callers must filter by owner.
    assert mine["id"] in {image["id"] for image in master_admin.images.list()}


def test_token_of_keystone_b_is_rejected_by_glance_of_keystone_a(cloud: TestCloud) -> None:
    stranger = cloud.glance_client(keystone="B", region="Master")
    with pytest.raises(glance_exc.HTTPUnauthorized) as raised:
        list(stranger.images.list())
    assert raised.value.code == 401
    # Keystone A's own token is still good there: it lists an image just uploaded.
    own = cloud.glance_client(region="RegionC")
    marker = _upload_raw(own, _name("own-token"), b"o" * SMALL)
    assert marker["id"] in {image["id"] for image in own.images.list()}
    own.images.delete(marker["id"])


def test_killed_glance_restarts_with_its_images(faulty_cloud: TestCloud) -> None:
    cloud = faulty_cloud
    client = cloud.glance_client(region="RegionA")
    image = _upload_raw(client, _name("survivor"), b"s" * SMALL)
    cloud.kill_glance("RegionA")
    assert not cloud.glance_running("RegionA")
    with pytest.raises(glance_exc.CommunicationError):
        client.images.get(image["id"])
    cloud.start_glance("RegionA")
    assert client.images.get(image["id"])["status"] == "active"
    client.images.delete(image["id"])


class _StallingReader(io.RawIOBase):
    """Image data that sends ``before`` bytes, then waits until ``go`` is set."""

    def __init__(self, before: int, go: threading.Event) -> None:
        self.before = before
        self.go = go
        self.sent = 0
        self.stalled = threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= self.before:
            self.stalled.set()
            self.go.wait(timeout=30)
            return b"" if self.sent > 2 * self.before else self._chunk(size)
        return self._chunk(size)

    def _chunk(self, size: int) -> bytes:
        chunk = b"\0" * (size if size > 0 else 65536)
        self.sent += len(chunk)
        return chunk


def test_glance_killed_during_upload_leaves_a_stuck_image(faulty_cloud: TestCloud) -> None:
    cloud = faulty_cloud
    client = cloud.glance_client(region="RegionA")
    image = client.images.create(name=_name("cut"), disk_format="raw", container_format="bare")
    go = threading.Event()
    reader = _StallingReader(2 * 1024 * 1024, go)
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            client.images.upload(image["id"], reader)
        except Exception as error:  # noqa: BLE001 - inspected below
            errors.append(error)

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert reader.stalled.wait(timeout=30)
    cloud.kill_glance("RegionA")
    go.set()
    uploader.join(timeout=30)
    assert errors, "the upload should fail when its Glance dies"
    cloud.start_glance("RegionA")
    assert client.images.get(image["id"])["status"] in {"queued", "saving"}
    client.images.delete(image["id"])


def test_hanging_glance_times_out_then_recovers(faulty_cloud: TestCloud) -> None:
    cloud = faulty_cloud
    client = cloud.glance_client(region="RegionB", timeout=1.5)
    marker = _upload_raw(client, _name("before-hang"), b"h" * SMALL)
    assert marker["id"] in {image["id"] for image in client.images.list()}
    with cloud.glance_hanging("RegionB"):
        began = time.monotonic()
        with pytest.raises((glance_exc.InvalidEndpoint, glance_exc.CommunicationError)):
            list(client.images.list())
        assert time.monotonic() - began < 10
    # Recovered: the same listing, with the image uploaded before the hang (by a client
    # with room to wait: a Glance just resumed on a busy machine may take over 1.5 s).
    patient = cloud.glance_client(region="RegionB", timeout=30)
    assert marker["id"] in {image["id"] for image in patient.images.list()}
    patient.images.delete(marker["id"])


def _listening_sockets() -> list[tuple[str, int]]:
    """(hex address, port) of every listening TCP socket, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in lines.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":  # TCP_LISTEN
                    address, port = local.split(":")
                    found.append((address, int(port, 16)))
    return found


def test_servers_listen_on_loopback_only(cloud: TestCloud) -> None:
    ports = {ks.port for ks in cloud.keystones.values()}
    ports |= {glance.port for glance in cloud.glances.values()}
    ports |= {glance.proxy.port for glance in cloud.glances.values() if glance.proxy}
    ours = [(address, port) for address, port in _listening_sockets() if port in ports]
    assert sorted(port for _, port in ours) == sorted(ports)
    assert {address for address, _ in ours} == {"0100007F"}  # 127.0.0.1


def test_memory_is_measured(cloud: TestCloud) -> None:
    used = cloud.memory_bytes()
    assert 100 * 2**20 < used < 4 * 2**30
