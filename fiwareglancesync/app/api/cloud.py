"""Turning the engine's view of a region into HTTP answers (410, 503)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.state import service
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import GlanceSyncError, UsageError

logger = logging.getLogger(__name__)


def _unreachable_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "a cloud server did not answer", whatever the library."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        from keystoneauth1 import exceptions as keystone

        types += [keystone.ConnectionError, keystone.ServiceUnavailable]
    with contextlib.suppress(ImportError):
        import requests

        types += [requests.ConnectionError, requests.Timeout]
    return tuple(types)


@contextlib.contextmanager
def engine_session() -> Iterator[GlanceSync]:
    """A fresh engine for one request; cloud failures become 410 or 503."""
    engine = service().new_engine()
    try:
        yield engine
    except UsageError as error:
        raise ApiError(410, description=str(error)) from None
    except GlanceSyncError as error:
        logger.warning("Service unavailable: %s", error)
        raise ApiError(503, description=str(error)) from None
    except _unreachable_types() as error:
        logger.warning("Service unavailable: %s: %s", type(error).__name__, error)
        raise ApiError(503, description=f"a cloud server is unreachable ({error})") from None
    finally:
        engine.close()


def region_fullname(engine: GlanceSync, region: str) -> str:
    """The region's fullname: a well-formed name of a known target, or 410."""
    try:
        return engine.normalise(region)
    except UsageError as error:
        raise ApiError(410, description=str(error)) from None


def known_region(engine: GlanceSync, region: str) -> str:
    """The fullname of a region the cloud has; 410 otherwise."""
    fullname = region_fullname(engine, region)
    if not engine.is_known_region(fullname):
        raise ApiError(410, description=f"there is no region {fullname}")
    return fullname
