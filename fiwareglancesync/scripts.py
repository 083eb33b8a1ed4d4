"""Console-script entry points that need more than a module's ``main()``.

``glancesync-api`` is installed with the package, but the service's libraries come with
the ``service`` extra: without them, say so in one line instead of a traceback.
"""

from __future__ import annotations

import sys

from fiwareglancesync.errors import ExitStatus

# Top-level modules that only the `service` extra installs.
SERVICE_MODULES = frozenset({"flask", "flask_sqlalchemy", "flask_migrate", "gunicorn", "alembic"})
SERVICE_HINT = (
    "ERROR: the GlanceSync service needs its extra dependencies: "
    "pip install 'fiware-glancesync[service]' (missing module: {name})"
)


def glancesync_api() -> None:
    """``glancesync-api``: the same commands as ``run.py`` (db upgrade, gunicornserver...)."""
    try:
        from fiwareglancesync.app.cli import main
    except ModuleNotFoundError as error:
        top = (error.name or "").partition(".")[0]
        if top not in SERVICE_MODULES:
            raise
        print(SERVICE_HINT.format(name=top), file=sys.stderr)
        sys.exit(ExitStatus.USAGE)
    sys.exit(main())
