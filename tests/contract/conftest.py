"""Fixtures of the facade contract: the same tests against the mock and real Glance.

``world`` is parametrised: ``mock`` is a MockFacade over an in-memory MockStore laid out
like the test cloud; ``glance`` is GlanceFacade on the real test cloud (``tests/cloud``).
Both worlds have a master target (regions Master, RegionA, RegionB), a second target
``other`` (region RegionC) and a second project that owns images of its own.
"""

from __future__ import annotations

import io
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fiwareglancesync.config import Credential, TargetConfig  # noqa: E402
from fiwareglancesync.facades.base import Facade  # noqa: E402
from fiwareglancesync.facades.mock_facade import MemoryStore, MockFacade  # noqa: E402
from fiwareglancesync.image import Image  # noqa: E402

# The test cloud, shared with tests/integration (see the note in glance_world below).
from tests.fixtures.cloud import cloud  # noqa: E402, F401

MASTER_REGIONS = ["Master", "RegionA", "RegionB"]
OTHER_REGIONS = ["RegionC"]


@dataclass
class World:
    """Two facades (targets ``master`` and ``other``) and what tests need around them."""

    kind: str
    master: Facade
    other: Facade
    # add_foreign(region, name, public) -> id: an image owned by the second project.
    add_foreign: Callable[[str, str, bool], str]
    # hide(region, id): make an image of the master target hidden (os_hidden).
    hide: Callable[[str, str], None]
    prefix: str = field(default_factory=lambda: f"ct-{uuid.uuid4().hex[:8]}-")

    def name(self, base: str) -> str:
        """A name unique to this test, so tests sharing the cloud never collide."""
        return self.prefix + base


def _target(name: str, user: str, password: str, auth_url: str, project: str) -> TargetConfig:
    credential = Credential.with_password(
        user=user, password=password, auth_url=auth_url, project_name=project
    )
    return TargetConfig(name=name, credential=credential, list_images_timeout=30)


def mock_world() -> World:
    store = MemoryStore()
    for region in MASTER_REGIONS:
        store.write(region, [])
    for region in OTHER_REGIONS:
        store.write(f"other:{region}", [])
    master = MockFacade(store, _target("master", "admin", "x", "http://127.0.0.1:9/v3", "admin"))
    other = MockFacade(store, _target("other", "admin", "x", "http://127.0.0.1:9/v3", "admin"))

    def add_foreign(region: str, name: str, public: bool) -> str:
        images = store.read(region) or []
        image_id = f"foreign-{uuid.uuid4().hex}"
        images.append(
            Image(
                name=name,
                id=image_id,
                owner="project2id",
                visibility="public" if public else "private",
                checksum="0" * 32,
            )
        )
        store.write(region, images)
        return image_id

    def hide(region: str, image_id: str) -> None:
        images = store.read(region) or []
        for image in images:
            if image.id == image_id:
                image.hidden = True
        store.write(region, images)

    return World("mock", master, other, add_foreign, hide)


def glance_world(test_cloud) -> World:
    from fiwareglancesync.facades.glance import GlanceFacade

    a, b = test_cloud.keystones["A"], test_cloud.keystones["B"]
    master = GlanceFacade(_target("master", a.admin_user, a.admin_password, a.auth_url, "admin"))
    other = GlanceFacade(_target("other", b.admin_user, b.admin_password, b.auth_url, "admin"))

    def add_foreign(region: str, name: str, public: bool) -> str:
        # A member may not publish; the admin makes project2's image public afterwards.
        client = test_cloud.glance_client(region=region, user="user2")
        created = client.images.create(name=name, disk_format="raw", container_format="bare")
        client.images.upload(created["id"], io.BytesIO(b"foreign data"))
        if public:
            test_cloud.glance_client(region=region).images.update(
                created["id"], visibility="public"
            )
        return created["id"]

    def hide(region: str, image_id: str) -> None:
        test_cloud.glance_client(region=region).images.update(image_id, os_hidden=True)

    return World("glance", master, other, add_foreign, hide)


def _delete_named(test_cloud, prefix: str) -> None:
    for region in test_cloud.regions:
        client = test_cloud.glance_client(region=region)
        for hidden in (False, True):
            for image in list(client.images.list(filters={"os_hidden": hidden})):
                if (image.get("name") or "").startswith(prefix):
                    if image.get("protected"):  # a test made it so: it must go all the same
                        client.images.update(image["id"], protected=False)
                    client.images.delete(image["id"])


@pytest.fixture(params=["mock", pytest.param("glance", marks=pytest.mark.cloud)])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "mock":
        yield mock_world()
        return
    test_cloud = request.getfixturevalue("cloud")
    built = glance_world(test_cloud)
    try:
        yield built
    finally:
        built.master.close()
        built.other.close()
        _delete_named(test_cloud, built.prefix)
