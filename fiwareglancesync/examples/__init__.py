"""Where the bundled example (a configuration and a scenario of backup CSVs) lives.

In a source checkout the example sits at the repository root, ``examples/``, where
``run_example.sh`` and the tests read it; building the package copies it here, next to
this file, so an installed GlanceSync carries it too. ``python -m
fiwareglancesync.examples`` prints the folder, for shell scripts::

    EXAMPLE=$(python -m fiwareglancesync.examples)
    export GLANCESYNC_CONFIG=$EXAMPLE/glancesync.conf
    eval "$(glancesync-mock --random "$EXAMPLE/scenario")"
"""

from __future__ import annotations

import sys
from pathlib import Path

from fiwareglancesync.errors import ExitStatus

CONFIG_NAME = "glancesync.conf"
SCENARIO_NAME = "scenario"


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    # Installed: copied beside this file. Editable or source checkout: the repo root's.
    return [here, here.parents[1] / "examples"]


def example_dir() -> Path | None:
    """The folder holding ``glancesync.conf`` and ``scenario/``, or None if missing."""
    for folder in _candidates():
        if (folder / CONFIG_NAME).is_file() and (folder / SCENARIO_NAME).is_dir():
            return folder
    return None


def main() -> int:
    folder = example_dir()
    if folder is None:
        print("ERROR: the bundled example is not installed with this copy", file=sys.stderr)
        return ExitStatus.USAGE
    print(folder)
    return ExitStatus.OK
