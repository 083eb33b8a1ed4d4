"""``GET /``: what this service is and since when it runs. No token needed."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from fiwareglancesync.app.models import iso
from fiwareglancesync.app.state import service

blueprint = Blueprint("root", __name__)


@blueprint.get("/")
def version() -> Response:
    state = service()
    settings = state.settings
    return jsonify(
        {
            "id": f"v{settings.version}",
            "owner": settings.owner,
            "status": settings.status,
            "version": settings.version,
            "updated": settings.updated,
            "runningfrom": iso(state.started_at),
            "href": settings.api_info_url,
        }
    )
