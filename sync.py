#!/usr/bin/env python3
"""Synchronise Glance images from the master region to the other regions."""

import sys

try:
    from fiwareglancesync.cli import main
except ModuleNotFoundError as error:  # run by an interpreter GlanceSync is not installed in
    print(
        f"ERROR: {sys.executable} cannot import {error.name}: install GlanceSync into it "
        "(pip install .), or run the installed 'glancesync' command",
        file=sys.stderr,
    )
    sys.exit(2)  # ExitStatus.USAGE: nothing was done (the enum itself may not import)

if __name__ == "__main__":
    sys.exit(main())
