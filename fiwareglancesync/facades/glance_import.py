"""glance-download, the import method by which a Glance pulls an image from another region.

Pure functions over the JSON Glance returns, so they can be tested without a cloud; the
facade (:mod:`glance`) does the calls. Facts they rely on (Glance 2023.1 and later):

* ``GET /v2/info/import`` lists the methods a Glance offers under
  ``import-methods.value``;
* ``POST /v2/images/{id}/import`` with ``{"method": {"name": "glance-download",
  "glance_image_id": ..., "glance_region": ..., "glance_service_interface": ...}}`` makes
  the Glance of the record ``id`` fetch the data of that image from that region's
  endpoint in its Keystone catalog, with the caller's token;
* while it works the image is ``importing``; a failed import puts it back to ``queued``
  and names the stores in ``os_glance_failed_import``; ``GET /v2/images/{id}/tasks``
  (Images API 2.12) gives the task's ``status`` (pending, processing, success, failure)
  and ``message``;
* a source that does not exist leaves the task ``pending`` and the image ``queued`` for
  a long time without any failure being reported: only a deadline ends that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fiwareglancesync.facades.base import ImportSource

GLANCE_DOWNLOAD = "glance-download"
IMPORT_TASK_TYPE = "api_image_import"
FINISHED_TASK_STATES = frozenset({"success", "failure"})


class ImportFailed(Exception):
    """The import did not give a verified copy.

    ``reusable``: the record is ``queued`` and nothing works on it any more, so the data
    can be streamed into it; otherwise it is deleted and a new one is made.
    """

    def __init__(self, reason: str, reusable: bool):
        super().__init__(reason)
        self.reason = reason
        self.reusable = reusable


def offered_import_methods(info: Any) -> frozenset[str]:
    """The method names in a ``GET /v2/info/import`` answer (none if it is malformed)."""
    methods = info.get("import-methods") if isinstance(info, Mapping) else None
    value = methods.get("value") if isinstance(methods, Mapping) else None
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value if isinstance(item, str))


def import_request(source: ImportSource) -> dict[str, Any]:
    """The body of ``POST /v2/images/{id}/import`` pulling ``source``'s image."""
    return {
        "method": {
            "name": GLANCE_DOWNLOAD,
            "glance_image_id": source.image.id,
            "glance_region": source.region.name,
            "glance_service_interface": "public",
        }
    }


def latest_import_task(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recent import task of an image (a record has one import, but be sure)."""
    imports = [task for task in tasks if task.get("type", IMPORT_TASK_TYPE) == IMPORT_TASK_TYPE]
    if not imports:
        return None
    return max(imports, key=lambda task: str(task.get("created_at") or ""))


def _task_message(task: Mapping[str, Any] | None) -> str:
    message = " ".join(str((task or {}).get("message") or "").split())
    return message[:300]


def import_failure(
    record: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
) -> tuple[str, bool] | None:
    """``(reason, reusable)`` when the import has failed, None while it may still succeed."""
    status = record.get("status")
    task = latest_import_task(tasks)
    message = _task_message(task)
    if status in ("killed", "deleted"):
        return f"the image became {status}" + (f": {message}" if message else ""), False
    if task is not None and task.get("status") == "failure":
        return message or "the import task failed", status == "queued"
    failed_stores = record.get("os_glance_failed_import")
    if failed_stores:
        # The task has not said its last word yet: do not stream into the record.
        detail = f": {message}" if message else ""
        return f"Glance could not import it into store {failed_stores}{detail}", False
    return None


def import_progress(record: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> str:
    """Where an unfinished import stands, for the message that gives up on it."""
    task = latest_import_task(tasks)
    state = f"image {record.get('status')}"
    if task is None:
        return f"{state}, no import task"
    message = _task_message(task)
    return f"{state}, task {task.get('status')}" + (f" ({message})" if message else "")
