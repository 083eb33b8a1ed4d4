#!/usr/bin/env python3
"""The GlanceSync REST service: `run.py db upgrade`, then `run.py gunicornserver`."""

import sys

try:
    from fiwareglancesync.app.cli import main
except ModuleNotFoundError as error:  # run by an interpreter the service is not installed in
    print(
        f"ERROR: {sys.executable} cannot import {error.name}: install the service into it "
        "(pip install '.[service]'), or run the installed 'glancesync-api' command",
        file=sys.stderr,
    )
    sys.exit(2)  # ExitStatus.USAGE: nothing was done (the enum itself may not import)

if __name__ == "__main__":
    sys.exit(main())
