"""The HTTP resources, one blueprint each."""

from __future__ import annotations

from flask import Flask

from fiwareglancesync.app.api import regions, root, status, tasks


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(root.blueprint)
    app.register_blueprint(regions.blueprint)
    app.register_blueprint(tasks.blueprint)
    app.register_blueprint(status.blueprint)
