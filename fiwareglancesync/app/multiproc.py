"""Where gunicorn's workers keep their metrics: prometheus_client's multiprocess files.

Kept apart from :mod:`metrics` on purpose: prometheus_client decides at its first import
whether values go to files, so this directory must be set up before anything imports it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Where an application keeps its ServiceMetrics (app.extensions).
METRICS_EXTENSION = "glancesync-metrics"
# The files prometheus_client's multiprocess mode writes: counter_<pid>.db and the like.
_VALUE_FILES = ("counter_", "gauge_", "histogram_", "summary_")


def prepare_multiprocess_directory() -> str:
    """Give gunicorn's workers a directory for their figures, before they are forked.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used, emptied of prometheus_client's
    own files (a previous server's figures would count again); otherwise a new temporary
    directory is made, and removed when the server ends. prometheus_client reads the
    variable when it is first imported, so this runs before the application is.
    """
    path = os.environ.get(MULTIPROCESS_VARIABLE)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.startswith(_VALUE_FILES) and name.endswith(".db"):
                os.unlink(os.path.join(path, name))
        return path
    path = tempfile.mkdtemp(prefix="glancesync-metrics-")
    os.environ[MULTIPROCESS_VARIABLE] = path
    atexit.register(shutil.rmtree, path, True)  # ours: made just now
    return path
