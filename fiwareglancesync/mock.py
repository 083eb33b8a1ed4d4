"""Load a scenario (a folder of backup CSVs) into the persistent mock store.

    python -m fiwareglancesync.mock [--path DIR | --random] [--confirm] SCENARIO_DIR

prints ``export GLANCESYNC_MOCKPERSISTENT_PATH=<dir>`` for ``eval $(...)``. Every file
is read and checked before the store is touched, so a bad row loads nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fiwareglancesync.errors import ExitStatus, UsageError
from fiwareglancesync.facades import MOCK_PATH_VARIABLE
from fiwareglancesync.facades.mock import MockStore, region_of_file
from fiwareglancesync.image import CsvFormatError, read_csv

DEFAULT_STORE = "~/.glancesync_persist"


def read_scenario(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Check every ``backup_<fullname>.csv`` of a scenario; map region → file.

    The file name, not the rows, names the region. Every row of every file is parsed
    here, so a malformed one is reported before anything is loaded.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"scenario directory {directory} does not exist")
    regions: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        region = region_of_file(entry.name)
        if region is None or not entry.is_file():
            continue
        try:
            with open(entry, encoding="utf-8", newline="") as stream:
                read_csv(stream, str(entry))
        except CsvFormatError as error:
            raise UsageError(str(error)) from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"{entry}: cannot be read ({error})") from None
        regions[region] = entry
    if not regions:
        raise UsageError(f"scenario directory {directory} has no backup_<region>.csv file")
    return regions


def load_scenario(scenario: dict[str, Path], store_path: Path, confirm: bool) -> None:
    """Replace the store's content with the scenario's (checked) files."""
    if store_path.exists() and not store_path.is_dir():
        raise UsageError(f"{store_path} exists and is not a directory")
    if store_path.is_dir() and any(store_path.iterdir()):
        if not confirm:
            raise UsageError(
                f"the mock store {store_path} is not empty; add --confirm to replace it"
            )
        shutil.rmtree(store_path)
    store = MockStore(store_path)
    for region, path in scenario.items():
        store.import_file(region, path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fiwareglancesync.mock",
        description="Load a folder of backup CSVs into the persistent GlanceSync mock and "
        f"print the {MOCK_PATH_VARIABLE} export line for eval.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--path", help=f"store directory (default {DEFAULT_STORE})")
    where.add_argument("--random", action="store_true", help="use a new temporary store directory")
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="replace the content of a non-empty store",
    )
    parser.add_argument("scenario", metavar="SCENARIO_DIR", help="folder of backup CSVs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = read_scenario(args.scenario)
        if args.random:
            store_path = Path(tempfile.mkdtemp(prefix="glancesync_mock_"))
        else:
            store_path = Path(os.path.expanduser(args.path or DEFAULT_STORE))
        store_path = store_path.absolute()
        load_scenario(scenario, store_path, args.confirm)
    except UsageError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    except OSError as error:
        print(f"ERROR: {error.strerror}: {error.filename}", file=sys.stderr)
        return ExitStatus.USAGE
    print(f"export {MOCK_PATH_VARIABLE}={store_path}")
    return ExitStatus.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
