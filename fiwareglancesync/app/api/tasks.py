"""``/regions/{region}/tasks/{taskId}``: follow (GET) and forget (DELETE) a sync task.

A task is looked up under its own region only. The cloud is asked whether the region
exists only when no such task is found, so polling a task costs one database read.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify

from fiwareglancesync.app import policy, taskstore
from fiwareglancesync.app.api.cloud import engine_session, known_region, region_fullname
from fiwareglancesync.app.auth import who
from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.state import audit, token_required

logger = logging.getLogger(__name__)
blueprint = Blueprint("tasks", __name__)


def _not_found(region: str) -> ApiError:
    """410 when the region itself is unknown, else 404 for the task."""
    with engine_session() as engine:
        known_region(engine, region)
    return ApiError(404)


def _fullname(region: str) -> str:
    with engine_session() as engine:
        return region_fullname(engine, region).fullname


@blueprint.get("/regions/<region>/tasks/<task_id>")
@token_required(policy.TASK_READ)
def get_task(region: str, task_id: str) -> Response:
    task = taskstore.find_task(_fullname(region), task_id)
    if task is None:
        raise _not_found(region)
    return jsonify(task.to_json())


@blueprint.delete("/regions/<region>/tasks/<task_id>")
@token_required(policy.TASK_DELETE)
def delete_task(region: str, task_id: str) -> Response:
    outcome = taskstore.delete_task(_fullname(region), task_id)
    if outcome is taskstore.DeleteOutcome.SYNCING:
        raise ApiError(409, "Task is still syncing")
    if outcome is taskstore.DeleteOutcome.MISSING:
        raise _not_found(region)
    audit.info("Task %s of region %s deleted by %s", task_id, region, who(g.identity))
    # Nothing to say, as a body that parses: every answer of the service is JSON.
    return jsonify({})
