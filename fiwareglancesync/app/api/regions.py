"""``/regions/{region}``: the sync status of a region (GET), start a sync (POST)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify, request

from fiwareglancesync.app import policy, taskstore
from fiwareglancesync.app.api.cloud import engine_session, known_region
from fiwareglancesync.app.auth import who
from fiwareglancesync.app.state import audit, service, token_required
from fiwareglancesync.plan import ImageStatus

logger = logging.getLogger(__name__)
blueprint = Blueprint("regions", __name__)
MASTER_AGE_HEADER = "X-GlanceSync-Master-Age"


def status_json(entry: ImageStatus) -> dict[str, object]:
    return {
        "id": entry.regional.id if entry.regional is not None else None,
        "name": entry.name,
        "status": entry.status,
        "message": entry.message,
    }


@blueprint.get("/regions/<region>")
@token_required(policy.STATUS_READ)
def region_status(region: str) -> Response:
    wanted = request.args.get("image")
    with engine_session() as engine:
        status = engine.status(known_region(engine, region))
    images = [
        status_json(entry) for entry in status.images if wanted is None or entry.name == wanted
    ]
    response = jsonify({"images": images})
    # How old the master's listing behind these statuses is (MASTER_CACHE_SECONDS); a
    # header, so that the documented body stays what it is.
    response.headers[MASTER_AGE_HEADER] = f"{status.master_age:.3f}"
    return response


@blueprint.post("/regions/<region>")
@token_required(policy.SYNC_START)
def start_sync(region: str) -> Response:
    state = service()
    with engine_session() as engine:
        fullname = known_region(engine, region).fullname
    identity = g.identity
    caller = taskstore.Caller(
        identity.user_name,
        identity.user_id,
        identity.user_domain_id,
        identity.project_id,
        identity.project_name,
    )
    claim = taskstore.claim_region(fullname, caller, state.settings.task_lease_seconds)
    task = claim.task
    if claim.created:
        audit.info("Task %s started: sync of region %s by %s", task.id, fullname, who(identity))
        state.runner.start(task.id, fullname, task.owner)
    else:
        taskstore.record_join(task, caller)
        audit.info("Task %s joined: sync of region %s by %s", task.id, fullname, who(identity))
    return jsonify({"taskId": task.id, "status": task.status})
