"""Replay every scenario folder through the real entry points.

A scenario folder holds:
- ``glancesync.conf`` and optionally ``args`` (the regions given to sync.py);
- ``before/``: backup CSVs loaded into a fresh persistent mock with the loader;
- ``status_pre.txt`` / ``status_post.txt``: ``sync.py --show-status`` before and after;
- ``sync.log``: what ``sync.py`` prints while synchronising;
- ``after/``: the backups the regions must hold afterwards.

Set GLANCESYNC_REGENERATE=1 to rewrite the expected files after a deliberate change
(then read the diff: these files are the specification by example).
"""

import io
import os
import shutil
from pathlib import Path

import pytest

from fiwareglancesync.cli import main as sync_main
from fiwareglancesync.facades.mock_facade import JournalStore
from fiwareglancesync.mock import main as load_main

HERE = Path(__file__).parent
SCENARIOS = sorted(p.name for p in HERE.iterdir() if (p / "before").is_dir())
REGENERATE = os.environ.get("GLANCESYNC_REGENERATE") == "1"


def sync(argv, environ):
    out, err = io.StringIO(), io.StringIO()
    status = sync_main(argv, environ=environ, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def check_text(path: Path, actual: str) -> None:
    if REGENERATE:
        path.write_text(actual)
    assert actual == path.read_text(), f"{path} differs"


def store_rows(path: Path) -> dict[str, list[str]]:
    store = JournalStore(path)
    return {
        region: sorted(repr(image) for image in store.read(region) or [])
        for region in store.region_names()
    }


def test_there_are_enough_scenarios():
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name, tmp_path, capsys):
    folder = HERE / name
    store = tmp_path / "store"
    assert load_main(["--path", str(store), str(folder / "before")]) == 0
    capsys.readouterr()
    environ = {
        "GLANCESYNC_CONFIG": str(folder / "glancesync.conf"),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
    }
    args_file = folder / "args"
    regions = args_file.read_text().split() if args_file.exists() else []

    status, out, err = sync(["--show-status", *regions], environ)
    assert status == 0, err
    check_text(folder / "status_pre.txt", out)

    status, out, err = sync(regions, environ)
    assert status == 0, out + err
    assert "Traceback" not in out + err
    check_text(folder / "sync.log", out)

    status, out, err = sync(["--show-status", *regions], environ)
    assert status == 0, err
    check_text(folder / "status_post.txt", out)

    if REGENERATE:
        shutil.rmtree(folder / "after", ignore_errors=True)
        shutil.copytree(store, folder / "after", ignore=shutil.ignore_patterns(".*"))
    assert store_rows(store) == store_rows(folder / "after")
