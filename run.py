#!/usr/bin/env python3
"""The GlanceSync REST service: `run.py db upgrade`, then `run.py gunicornserver`."""

import sys

from fiwareglancesync.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
