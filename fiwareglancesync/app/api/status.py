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
from fiwareglancesync.config import MASTER
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import explain
from fiwareglancesync.report import RegionReport, StatusReport, image_entries, render_html

logger = logging.getLogger(__name__)
blueprint = Blueprint("status", __name__)


def _failed(where: str, error: Exception) -> RegionReport:
    explained = explain(error)
    if explained.bug:
        logger.error("Status of %s failed unexpectedly", where, exc_info=error)
    else:
        logger.warning("Status of %s: %s", where, explained.text)
    return RegionReport(where, error=explained.public or "it failed")


def federation_report(engine: GlanceSync) -> StatusReport:
    targets = [MASTER, *(name for name in engine.config.targets if name != MASTER)]
    regions, failures = engine.expand_regions_isolated([f"{target}:" for target in targets])
    reports = [_failed(f"{target}:", error) for target, error in failures]
    for region in regions:
        try:
            reports.append(
                RegionReport(region.fullname, image_entries(engine.region_status(region)))
            )
        except Exception as error:  # noqa: BLE001 - one region's failure is shown, not raised
            reports.append(_failed(region.fullname, error))
    return StatusReport(reports, engine.config.master_region, engine.config.source)


@blueprint.get("/status.json")
@token_required(policy.STATUS_READ)
def status_json() -> Response:
    with engine_session() as engine:
        report = federation_report(engine)
    return jsonify(report.to_json())


@blueprint.get("/status")
@token_required(policy.STATUS_READ)
def status_page() -> Response:
    with engine_session() as engine:
        report = federation_report(engine)
    return Response(render_html(report), mimetype="text/html")
