"""Turning the engine's view of a region into HTTP answers (410, 503, 500)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from fiwareglancesync.app.errors import ApiError
from fiwareglancesync.app.state import service
from fiwareglancesync.engine import GlanceSync
from fiwareglancesync.errors import explain
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def engine_session() -> Iterator[GlanceSync]:
    """A fresh engine for one request; its failures become the HTTP answer they stand for.

    The facades raise only FacadeError for a cloud that failed, so no client library is
    needed here: :func:`errors.explain` says which status an error means (410 for a bad
    region, 503 for a cloud that did not answer, 500 for a bug).
    """
    engine = service().new_engine()
    try:
        yield engine
    except ApiError:
        raise
    except Exception as error:
        explained = explain(error)
        if explained.bug:
            raise  # the application's handler logs the traceback and answers 500
        if explained.http_status >= 500:
            # The whole story goes to the log; the caller learns which service failed.
            logger.warning("Service unavailable: %s", explained.text)
        raise ApiError(explained.http_status, description=explained.public) from None
    finally:
        engine.close()


def region_fullname(engine: GlanceSync, region: str) -> RegionRef:
    """The region named in a URL: a well-formed name of a known target (else 410)."""
    return engine.region(region, known=False)


def known_region(engine: GlanceSync, region: str) -> RegionRef:
    """The region named in a URL, which the cloud has; 410 otherwise."""
    return engine.region(region)
