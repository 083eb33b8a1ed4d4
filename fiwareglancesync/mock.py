"""Load a scenario (a folder of backup CSVs) into the persistent mock store.

    python -m fiwareglancesync.mock [--path DIR | --random] [--confirm] SCENARIO_DIR

prints ``export GLANCESYNC_MOCKPERSISTENT_PATH=<dir>`` for ``eval $(...)``. Every file
is read and checked before the store is touched, so a bad row loads nothing.

The loader never destroys what it did not make. It replaces only a directory that is
empty, or that holds the marker file of a store it made and nothing a store does not
hold; the scenario folder can never be (or be inside) the store. A new store is written
beside the old one and then swapped in, so a load that fails half-way leaves the old
store as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fiwareglancesync.backup import (
    PROJECT_IDS_FILE,
    BackupFormatError,
    read_project_ids,
    region_of_file,
)
from fiwareglancesync.console import program_name
from fiwareglancesync.errors import (
    ExitStatus,
    FacadeError,
    GlanceSyncError,
    UsageError,
    explain,
    os_reason,
)
from fiwareglancesync.facades import MOCK_PATH_VARIABLE
from fiwareglancesync.facades.journal import JOURNAL_SUFFIX
from fiwareglancesync.facades.mock_facade import STORE_MARKER, open_store
from fiwareglancesync.image import CsvFormatError, read_csv
from fiwareglancesync.region import RegionRef

DEFAULT_STORE = "~/.glancesync_persist"


class StoreWriteError(GlanceSyncError):
    """The store could not be written (permissions, a full disk): exit status 1."""


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
            RegionRef.parse(region)
        except UsageError:
            raise UsageError(
                f"{entry}: the file name names region {region!r}, which is neither Region "
                "nor target:Region"
            ) from None
        if region in regions:
            raise UsageError(f"{entry}: region {region} is also in {regions[region].name}")
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


def read_scenario_project_ids(directory: str | os.PathLike[str]) -> dict[str, str]:
    try:
        return read_project_ids(directory)
    except BackupFormatError as error:
        raise UsageError(str(error)) from None


# --------------------------------------------------------------------------- ownership


def is_store_file(name: str) -> bool:
    """A file a mock store holds: region files, their journals, locks and temporary files, ids."""
    return (
        name in (STORE_MARKER, PROJECT_IDS_FILE)
        or region_of_file(name) is not None
        or (name.startswith(".backup_") and name.endswith((".lock", JOURNAL_SUFFIX)))
        or name.startswith(".tmp-")
    )


def _entries(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir())


def check_replaceable(store: Path, scenario: Path, confirm: bool) -> None:
    """Refuse any store path whose content the loader did not make."""
    if store == scenario:
        raise UsageError(f"the store {store} is the scenario folder itself: use another --path")
    if store in scenario.parents:
        raise UsageError(
            f"the scenario folder {scenario} is inside the store {store}, which loading "
            "replaces: use another --path"
        )
    if not store.exists():
        return
    if not store.is_dir():
        raise UsageError(f"{store} exists and is not a directory")
    entries = _entries(store)
    if not entries:
        return
    if STORE_MARKER not in entries:
        raise UsageError(
            f"{store} is not empty and is not a mock store made by glancesync-mock (it has "
            f"no {STORE_MARKER} file): it is left alone; choose another --path, or empty it "
            "yourself"
        )
    foreign = [name for name in entries if not is_store_file(name)]
    if foreign:
        raise UsageError(
            f"the mock store {store} also holds {foreign[0]!r}, which the store did not make: "
            "it is left alone; move that file away, or choose another --path"
        )
    if not confirm:
        raise UsageError(f"the mock store {store} is not empty; add --confirm to replace it")


def _remove_store(path: Path) -> None:
    """Delete a store directory, file by file: only what a store holds, then the folder."""
    for name in _entries(path):
        if is_store_file(name):
            with contextlib.suppress(FileNotFoundError):
                (path / name).unlink()
    with contextlib.suppress(OSError):
        path.rmdir()  # left in place if something else appeared in it meanwhile


# --------------------------------------------------------------------------- writing


def fill_store(directory: Path, scenario: dict[str, Path], project_ids: dict[str, str]) -> None:
    """Write a scenario's files and the store marker into an empty directory."""
    store = open_store(directory)
    for region, path in scenario.items():
        store.import_file(region, path)
    if project_ids:
        store.set_project_ids(project_ids)
    marker = directory / STORE_MARKER
    if not marker.exists():
        marker.write_text("A GlanceSync mock store, made by glancesync-mock.\n", encoding="utf-8")


def _fill_in_place(directory: Path, scenario: dict[str, Path], ids: dict[str, str]) -> None:
    """An empty directory (perhaps a mount point): fill it, or leave it empty again."""
    try:
        fill_store(directory, scenario, ids)
    except BaseException:
        for name in _entries(directory):
            if is_store_file(name):
                with contextlib.suppress(OSError):
                    (directory / name).unlink()
        raise


def _swap_in(new: Path, store: Path) -> None:
    """Put the directory ``new`` at ``store``; the old store is removed only afterwards."""
    if not store.exists():
        new.rename(store)
        return
    old = Path(tempfile.mkdtemp(dir=store.parent, prefix=f".{store.name}.old-"))
    old.rmdir()
    store.rename(old)
    try:
        new.rename(store)
    except BaseException:
        old.rename(store)  # put the old store back as it was
        raise
    _remove_store(old)


def load_scenario(
    scenario: dict[str, Path],
    store_path: Path,
    confirm: bool,
    project_ids: dict[str, str] | None = None,
    scenario_dir: Path | None = None,
) -> None:
    """Replace the store's content with the scenario's (checked) files."""
    store = Path(os.path.realpath(store_path))
    if scenario_dir is not None:
        check_replaceable(store, Path(os.path.realpath(scenario_dir)), confirm)
    ids = project_ids or {}
    try:
        if store.is_dir() and not _entries(store):
            _fill_in_place(store, scenario, ids)
            return
        store.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(dir=store.parent, prefix=f".{store.name}.loading-"))
        try:
            fill_store(new, scenario, ids)
            _swap_in(new, store)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)  # our own temporary directory
            raise
    except FacadeError as error:
        raise StoreWriteError(str(error)) from None
    except OSError as error:
        reason = os_reason(error)
        where = error.filename or store
        raise StoreWriteError(f"cannot write the mock store {where}: {reason}") from None


# --------------------------------------------------------------------------- command


def _parser(prog: str = "python -m fiwareglancesync.mock") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start a clean persistent session: load a folder of backup CSVs into "
        f"the persistent GlanceSync mock and print the {MOCK_PATH_VARIABLE} export line "
        "for eval. Exit status: 0 loaded, 1 the store could not be written, 2 bad "
        "arguments or scenario (nothing was changed).",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--path",
        help=f"path where the persistent objects are created (default {DEFAULT_STORE})",
    )
    where.add_argument("--random", action="store_true", help="create a random path")
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="if path exists and it is not empty, this option is required (only a store "
        "made by this loader is ever replaced)",
    )
    parser.add_argument(
        "scenario",
        metavar="SCENARIO_DIR",
        help="directory with initial load, with files (backup_<region>.csv)",
    )
    return parser


def _store_path(args: argparse.Namespace) -> Path:
    if args.random:
        return Path(tempfile.mkdtemp(prefix="glancesync_mock_")).absolute()
    return Path(os.path.expanduser(args.path or DEFAULT_STORE)).absolute()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        prog = None if argv is not None else program_name(__file__, "fiwareglancesync.mock", "")
        args = (_parser(prog) if prog else _parser()).parse_args(argv)
    except SystemExit as done:
        return int(done.code or 0)
    try:
        scenario = read_scenario(args.scenario)
        project_ids = read_scenario_project_ids(args.scenario)
        store_path = _store_path(args)
        load_scenario(scenario, store_path, args.confirm, project_ids, Path(args.scenario))
    except Exception as error:  # noqa: BLE001 - every failure is one line and a status
        explained = explain(error)
        for line in explained.lines:
            print(f"ERROR: {line}", file=sys.stderr)
        return explained.exit_status
    print(f"export {MOCK_PATH_VARIABLE}={store_path}")
    return ExitStatus.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
