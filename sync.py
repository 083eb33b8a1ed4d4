#!/usr/bin/env python3
"""Synchronise Glance images from the master region to the other regions."""

import sys

from fiwareglancesync.cli import main

if __name__ == "__main__":
    sys.exit(main())
