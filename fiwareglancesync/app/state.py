"""What the views need from the running service, kept in ``app.extensions``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app

from fiwareglancesync.app.auth import TokenVerifier
from fiwareglancesync.app.runner import EngineFactory, SyncRunner
from fiwareglancesync.app.settings import Settings

EXTENSION = "glancesync"


@dataclass
class ServiceState:
    settings: Settings
    verifier: TokenVerifier
    new_engine: EngineFactory
    runner: SyncRunner
    started_at: dt.datetime


def service() -> ServiceState:
    return current_app.extensions[EXTENSION]
