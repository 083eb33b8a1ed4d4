"""Facades: the engine's only way to reach a cloud. Chosen once, at the edge."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from fiwareglancesync.config import TargetConfig
from fiwareglancesync.errors import UsageError
from fiwareglancesync.facades.base import Facade
from fiwareglancesync.facades.mock_facade import MockFacade, MockStore, open_store

MOCK_PATH_VARIABLE = "GLANCESYNC_MOCKPERSISTENT_PATH"


def mock_factory(store: MockStore) -> Callable[[TargetConfig], Facade]:
    return lambda target: MockFacade(store, target)


def facade_factory(
    environ: Mapping[str, str], read_only: bool = False
) -> Callable[[TargetConfig], Facade]:
    """The persistent mock when GLANCESYNC_MOCKPERSISTENT_PATH is set, else real Glance.

    ``read_only``: the run changes no image (a status, a dry run, a backup), so the
    mock store must not write either, not even to compact its journals.
    """
    mock_path = environ.get(MOCK_PATH_VARIABLE)
    if mock_path:
        return mock_factory(open_store(mock_path, read_only=read_only))
    try:
        glance = importlib.import_module("fiwareglancesync.facades.glance")
    except ImportError as error:
        raise UsageError(
            f"the OpenStack facade cannot be loaded ({error}); install the OpenStack "
            f"dependencies, or set {MOCK_PATH_VARIABLE} to use the mock"
        ) from None
    return glance.GlanceFacade
