"""Helpers for the end-to-end sync.py tests on the real test cloud.

A test writes a glancesync.conf pointing at the cloud's two Keystones, seeds images with
plain glanceclient calls (as an operator's other tools would), runs ``sync.py`` through
``fiwareglancesync.cli.main`` exactly as the command line does, and looks at the regions
with glanceclient again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiwareglancesync import cli
from fiwareglancesync.facades.glance import GlanceFacade

MASTER_REGION = "Master"
KiB = 1024


def payload(seed: str, size: int = 48 * KiB) -> bytes:
    """Deterministic bytes, different for every seed (so checksums differ)."""
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


QCOW2_CLUSTER = 64 * KiB
_QCOW2_COPIED = 1 << 63  # an L1/L2 entry whose cluster has refcount 1


def qcow2_disk(seed: str, data_clusters: int = 40) -> bytes:
    """A complete, valid qcow2 (version 3) image, laid out as qemu-img would write it.

    Clusters of 64 KiB: the header, the refcount table, one refcount block, the L1
    table, one L2 table, then ``data_clusters`` clusters of :func:`payload` bytes mapped
    to the first guest clusters; every cluster used has a refcount of 1, so
    ``qemu-img check`` finds nothing wrong. Written here because qemu-img is not
    installed everywhere the tests run.
    """
    if not 0 < data_clusters <= QCOW2_CLUSTER // 8:  # what one L2 table maps
        raise ValueError(f"data_clusters must be 1 to {QCOW2_CLUSTER // 8}")
    refcount_table, refcount_block, l1_table, l2_table, first_data = (
        n * QCOW2_CLUSTER for n in range(1, 6)
    )
    clusters = 5 + data_clusters
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb",  # magic
        3,  # version
        0,  # backing file offset: none
        0,  # backing file name length
        16,  # cluster bits: 64 KiB
        data_clusters * QCOW2_CLUSTER,  # virtual size
        0,  # no encryption
        1,  # L1 entries
        l1_table,
        refcount_table,
        1,  # refcount table clusters
        0,  # no snapshots
        0,
        0,  # incompatible, compatible and autoclear features: none
        0,
        0,
        4,  # refcount order: 16-bit refcounts
        104,  # header length
    )
    image = bytearray(clusters * QCOW2_CLUSTER)
    image[: len(header)] = header  # the header extensions end at once: zeros follow
    struct.pack_into(">Q", image, refcount_table, refcount_block)
    struct.pack_into(f">{clusters}H", image, refcount_block, *([1] * clusters))
    struct.pack_into(">Q", image, l1_table, l2_table | _QCOW2_COPIED)
    for guest in range(data_clusters):
        offset = first_data + guest * QCOW2_CLUSTER
        struct.pack_into(">Q", image, l2_table + 8 * guest, offset | _QCOW2_COPIED)
        image[offset : offset + QCOW2_CLUSTER] = payload(f"{seed}{guest}", QCOW2_CLUSTER)
    return bytes(image)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class SyncRun:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class CloudSync:
    """A GlanceSync installation pointed at the test cloud, in a temporary directory."""

    def __init__(self, cloud: Any, workdir: Path):
        self.cloud = cloud
        self.workdir = workdir
        self.images_dir = workdir / "images"
        self.images_dir.mkdir(exist_ok=True)
        self.config_path = workdir / "glancesync.conf"
        self.keystone_a = cloud.keystones["A"]
        self.keystone_b = cloud.keystones["B"]
        self.write_config()

    # ------------------------------------------------------------------- config

    def write_config(
        self,
        master: Mapping[str, str] | None = None,
        other: Mapping[str, str] | None = None,
        main: Mapping[str, str] | None = None,
    ) -> Path:
        a, b = self.keystone_a, self.keystone_b
        encoded = base64.b64encode(a.admin_password.encode()).decode()
        sections = {
            "main": {
                "master_region": MASTER_REGION,
                "images_dir": str(self.images_dir),
                "max_children": "3",
                **(main or {}),
            },
            "master": {
                "credential": f"{a.admin_user},{encoded},{a.auth_url},{a.admin_project}",
                "tenant_id": a.admin_project_id,
                **(master or {}),
            },
            "other": {
                "user": b.admin_user,
                "password": b.admin_password,
                "keystone_url": b.auth_url,
                "tenant": b.admin_project,
                "tenant_id": b.admin_project_id,
                **(other or {}),
            },
        }
        text = "".join(
            f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in body.items()) + "\n"
            for name, body in sections.items()
        )
        self.config_path.write_text(text)
        return self.config_path

    # ------------------------------------------------------------------- running

    def environ(self, **extra: str) -> dict[str, str]:
        return {"GLANCESYNC_CONFIG": str(self.config_path), **extra}

    def run(
        self,
        *argv: str,
        facade_factory: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> SyncRun:
        """``sync.py ARGV`` in this process (cwd must be the workdir: see the fixture)."""
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(
            list(argv),
            environ=dict(environ) if environ is not None else self.environ(),
            facade_factory=facade_factory,
            stdout=out,
            stderr=err,
        )
        return SyncRun(int(status), out.getvalue(), err.getvalue())

    def status_rows(self, *regions: str, **kwargs: Any) -> list[str]:
        run = self.run("--show-status", *regions, **kwargs)
        assert run.status == 0, run.err
        return run.out.splitlines()

    # ------------------------------------------------------------------- images

    def client(self, region: str = MASTER_REGION, user: str | None = None) -> Any:
        return self.cloud.glance_client(region=region, user=user)

    def add_image(
        self,
        region: str,
        name: str,
        data: bytes,
        *,
        public: bool = True,
        user: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create and upload a raw image with plain glanceclient, as an operator would."""
        client = self.client(region, user)
        visibility = "public" if public and user is None else "private"
        created = client.images.create(
            name=name,
            disk_format="raw",
            container_format="bare",
            visibility=visibility,
            **{key: str(value) for key, value in fields.items()},
        )
        client.images.upload(created["id"], io.BytesIO(data), image_size=len(data))
        if public and user is not None:  # a member may not publish: the admin does it
            self.client(region).images.update(created["id"], visibility="public")
        return dict(self.client(region).images.get(created["id"]))

    def images(self, region: str) -> list[dict[str, Any]]:
        """Every image of the region, every project's, hidden ones too."""
        client = self.client(region)
        found: dict[str, dict[str, Any]] = {}
        for hidden in (False, True):
            for image in client.images.list(filters={"os_hidden": hidden}):
                found[image["id"]] = dict(image)
        return list(found.values())

    def named(self, region: str, name: str) -> list[dict[str, Any]]:
        return [image for image in self.images(region) if image.get("name") == name]

    def one(self, region: str, name: str) -> dict[str, Any]:
        found = self.named(region, name)
        assert len(found) == 1, f"{region} has {len(found)} images called {name}"
        return found[0]

    def unfinished(self, regions: Sequence[str]) -> list[tuple[str, str, str]]:
        return [
            (region, image.get("name"), image["status"])
            for region in regions
            for image in self.images(region)
            if image["status"] != "active"
        ]

    def write_image_file(self, image_id: str, data: bytes) -> Path:
        path = self.images_dir / image_id
        path.write_bytes(data)
        return path


def facade_factory_with(upload_hook: Any) -> Any:
    """A facade factory whose uploads pass their data through ``upload_hook`` first.

    ``upload_hook(facade, region, image, data) -> data`` lets a fault test act while a
    transfer is under way (kill the server, press Ctrl-C); everything else is the real
    GlanceFacade.
    """

    class HookedFacade(GlanceFacade):
        def upload(self, region, image, data):  # type: ignore[no-untyped-def]
            return super().upload(region, image, upload_hook(self, region, image, data))

    return lambda environ: HookedFacade


def deleting_the_source_first(cloud: Any) -> Any:
    """A facade factory whose imports start after the master image is gone, so that
    the region's import fails and GlanceSync falls back to sending the data."""

    class SourceVanishes(GlanceFacade):
        def import_image(self, region, image, source, fallback):  # type: ignore[no-untyped-def]
            cloud.glance_client(region=MASTER_REGION).images.delete(source.image.id)
            return super().import_image(region, image, source, fallback)

    return lambda environ: SourceVanishes


def environment_without_openstack() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
