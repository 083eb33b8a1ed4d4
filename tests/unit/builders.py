"""Small builders shared by the unit tests."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from fiwareglancesync.config import Credential, TargetConfig
from fiwareglancesync.image import Image

PROJECT = "tenant1id"


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def image(name: str, image_id: str | None = None, **fields: Any) -> Image:
    fields.setdefault("checksum", checksum(name))
    fields.setdefault("owner", PROJECT)
    fields.setdefault("is_public", True)
    fields.setdefault("size", 1000)
    return Image(name=name, id=image_id or f"id-{name}", **fields)


def target(name: str = "master", **fields: Any) -> TargetConfig:
    credential = Credential("admin", "secret", "http://127.0.0.1:5000/v3", "tenant1")
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
