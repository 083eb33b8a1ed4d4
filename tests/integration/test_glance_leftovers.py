"""GlanceFacade on the real cloud: which unfinished images an upload cleans up.

An interrupted run can leave images ``queued`` or ``saving``; the next upload of the same
name removes them. Nothing else may go: not an active image of the same name, not an
unfinished image of another name, never another project's image.
"""

from __future__ import annotations

import hashlib
import io
import uuid

from sync_cloud_support import payload

from fiwareglancesync.config import Credential, TargetConfig
from fiwareglancesync.facades.base import ImageData
from fiwareglancesync.facades.glance import GlanceFacade
from fiwareglancesync.image import Image
from fiwareglancesync.region import RegionRef


def queued(client, name: str) -> str:
    """An image record that never received data, as a killed upload leaves it."""
    return client.images.create(name=name, disk_format="raw", container_format="bare")["id"]


def test_an_upload_removes_only_our_unfinished_images_of_that_name(cloud, tmp_path):
    name = f"left-{uuid.uuid4().hex[:8]}"
    admin = cloud.glance_client(region="RegionA")
    ours_unfinished = queued(admin, name)
    ours_other_name = queued(admin, name + "-other")
    theirs_unfinished = queued(cloud.glance_client(region="RegionA", user="user2"), name)
    ours_active = admin.images.create(name=name, disk_format="raw", container_format="bare")
    admin.images.upload(ours_active["id"], io.BytesIO(b"an older copy"))

    a = cloud.keystones["A"]
    credential = Credential.with_password(
        a.admin_user, a.admin_password, a.auth_url, a.admin_project
    )
    facade = GlanceFacade(TargetConfig(name="master", credential=credential))
    data = payload(name)
    path = tmp_path / "image.raw"
    path.write_bytes(data)
    wanted = Image(
        name=name,
        id="",
        size=len(data),
        checksum=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        disk_format="raw",
        container_format="bare",
    )
    try:
        created = facade.upload(
            RegionRef("master", "RegionA"), wanted, ImageData.from_file(str(path), wanted)
        )
    finally:
        facade.close()

    remaining = {image["id"]: image["status"] for image in admin.images.list()}
    assert ours_unfinished not in remaining
    assert remaining[created.id] == "active"
    assert remaining[ours_active["id"]] == "active"
    assert remaining[ours_other_name] == "queued"
    assert remaining[theirs_unfinished] == "queued"
    for image_id in (created.id, ours_active["id"], ours_other_name, theirs_unfinished):
        admin.images.delete(image_id)
