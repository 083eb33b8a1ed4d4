"""The layout of a backup folder, shared by ``--make-backup``, the loader and the mock store.

A backup folder holds one ``backup_<fullname>.csv`` per region (rows in the format of
:mod:`fiwareglancesync.image`) and ``project_ids.json``, the project id of each target the
backup was made with. The mock replays the folder with those ids, so a backup of a real
cloud shows the statuses the real cloud would, with the configuration it was made with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from fiwareglancesync.errors import UsageError
from fiwareglancesync.region import RegionRef

BACKUP_PREFIX = "backup_"
BACKUP_SUFFIX = ".csv"
PROJECT_IDS_FILE = "project_ids.json"
# project_ids.json is a handful of ids: anything much bigger is not one.
MAX_PROJECT_IDS_BYTES = 1024 * 1024


class BackupFormatError(ValueError):
    """A file of a backup folder that cannot be read; the message names it."""


def backup_file_name(fullname: str) -> str:
    return f"{BACKUP_PREFIX}{fullname}{BACKUP_SUFFIX}"


def region_of_file(file_name: str) -> str | None:
    """The region fullname a backup file stands for (``master:X`` counts as ``X``).

    A name that is no region (``a:b:c``) is returned as it is, for the loader to refuse.
    """
    if not (file_name.startswith(BACKUP_PREFIX) and file_name.endswith(BACKUP_SUFFIX)):
        return None
    name = file_name[len(BACKUP_PREFIX) : -len(BACKUP_SUFFIX)]
    if not name:
        return None
    try:
        return RegionRef.parse(name).fullname
    except UsageError:
        return name


def read_project_ids(folder: str | os.PathLike[str]) -> dict[str, str]:
    """The ids recorded in ``project_ids.json``; an empty mapping when there is none."""
    path = Path(folder) / PROJECT_IDS_FILE
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_PROJECT_IDS_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise BackupFormatError(f"{path}: cannot be read ({error.strerror})") from None
    if len(raw) > MAX_PROJECT_IDS_BYTES:
        raise BackupFormatError(f"{path}: too big for a list of project ids")
    try:
        ids = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BackupFormatError(f"{path}: not a JSON object of target: project id") from None
    if not isinstance(ids, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and value for key, value in ids.items()
    ):
        raise BackupFormatError(f"{path}: not a JSON object of target: project id")
    return ids


def project_ids_text(ids: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(ids.items())), indent=2) + "\n"
