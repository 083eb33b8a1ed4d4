"""One version everywhere: the package, ``sync.py --version``, ``GET /``, the changelog.

``fiwareglancesync.__version__`` is the single source: the package metadata reads it at
build time (checked against the built wheel in test_wheel.py), the command line and the
service report it, and the changelog's newest entry must name it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fiwareglancesync import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_a_release_or_development_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", __version__)


def test_sync_py_reports_the_package_version() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "sync.py"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"sync.py {__version__}"


def test_the_service_root_reports_the_package_version(tmp_path: Path) -> None:
    from fiwareglancesync.app import create_app
    from fiwareglancesync.app.settings import Settings

    settings = Settings(database_uri=f"sqlite:///{tmp_path / 'glancesyncapi.db'}")
    app = create_app(
        {
            "GLANCESYNC_SETTINGS": settings,
            # GET / asks neither Keystone nor Glance: stand-ins that must not be called.
            "TOKEN_VERIFIER": object(),
            "ENGINE_FACTORY": lambda: None,
        },
        environ={},
    )
    answer = app.test_client().get("/")
    assert answer.status_code == 200
    assert answer.json["version"] == __version__
    assert answer.json["id"] == f"v{__version__}"


def test_the_changelog_starts_with_this_version() -> None:
    text = (ROOT / "CHANGELOG.rst").read_text()
    first = re.search(r"^(\d+\.\d+\.\d+\S*) \(", text, re.MULTILINE)
    # A development version (2.0.0.dev0) is the work towards its release's entry.
    release = re.sub(r"(\.dev\d+|rc\d+)$", "", __version__)
    assert first is not None and first.group(1) == release
