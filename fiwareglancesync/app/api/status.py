"""``GET /status`` and ``GET /status.json``: every region of every target at a glance.

The same report as ``sync.py --show-status --format html|json``, computed by the same
engine (a worker's shared facades and master listing). A region that fails shows which
service was unavailable; what went wrong goes to the log.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from fiwareglancesync.app import policy
from fiwareglancesync.app.api.cloud import engine_session
from fiwareglancesync.app.state import token_required
from fiwareglancesync.report import render_html

logger = logging.getLogger(__name__)
blueprint = Blueprint("status", __name__)


@blueprint.get("/status.json")
@token_required(policy.STATUS_READ)
def status_json() -> Response:
    with engine_session() as engine:
        report = engine.federation_report()
    return jsonify(report.to_json())


@blueprint.get("/status")
@token_required(policy.STATUS_READ)
def status_page() -> Response:
    with engine_session() as engine:
        report = engine.federation_report()
    return Response(render_html(report), mimetype="text/html")
