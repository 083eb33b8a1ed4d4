"""Small builders shared by the unit tests."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from fiwareglancesync.config import Credential, TargetConfig
from fiwareglancesync.facades.base import Facade
from fiwareglancesync.image import Image

PROJECT = "tenant1id"


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def image(name: str, image_id: str | None = None, **fields: Any) -> Image:
    fields.setdefault("checksum", checksum(name))
    fields.setdefault("owner", PROJECT)
    fields.setdefault("size", 1000)
    public = fields.pop("is_public", True)
    if fields.get("visibility") is not None:  # Glance v2's, as a facade reads it
        fields.setdefault("visibility_known", True)
    else:  # public or not only, as a format-1 backup row tells it
        fields["visibility"] = "public" if public else "private"
    return Image(name=name, id=image_id or f"id-{name}", **fields)


def target(name: str = "master", **fields: Any) -> TargetConfig:
    credential = Credential.with_password("admin", "secret", "http://127.0.0.1:5000/v3", "tenant1")
    for key in (
        "forcesyncs",
        "metadata_set",
        "dontupdate",
        "replace",
        "rename",
        "obsolete_syncprops",
    ):
        if key in fields:
            fields[key] = frozenset(fields[key])
    fields.setdefault("tenant_id", PROJECT)
    return TargetConfig(name=name, credential=credential, **fields)


def run_sync(argv: list[str], environ: dict[str, str], **kwargs: Any) -> tuple[int, str, str]:
    """``sync.py argv`` through main(): (exit status, standard output, standard error)."""
    from fiwareglancesync.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = main(argv, environ=environ, stdout=out, stderr=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


class RecordingRegion(Facade):
    """The parts of a facade a sender's tests do not look at: an empty region of a
    target with one project, that records its updates and deletes in ``calls``."""

    calls: list[str]

    def regions(self):
        return ["Master", "RegionA"]

    def project_id(self):
        return PROJECT

    def project_names(self, project_ids):
        return {}

    def project_ids_by_name(self, names):
        return {}

    def list_images(self, region):
        return []

    def update(self, region, image):
        self.calls.append(f"update {image.name}")

    def delete(self, region, image_id):
        self.calls.append(f"delete {image_id}")
        return True

    def download(self, region, image):
        raise AssertionError("not used")


def statuses_after(region: Any, master: list[Image], config: TargetConfig, project: str):
    """apply_plan's ``statuses_of``: the planner's statuses of the region holding the
    images given, as the engine counts them for what a sync left behind."""
    from collections import Counter

    from fiwareglancesync.plan import plan_region

    def statuses_of(images: list[Image]) -> dict[str, int]:
        replanned = plan_region(region, master, images, config, project)
        return dict(Counter(entry.status for entry in replanned.statuses))

    return statuses_of
