"""The command line works without the ``service`` extra: it never imports Flask.

The wheel test proves it in a virtualenv without Flask; this quicker check runs in the
test virtualenv (where Flask is installed) and looks at what a whole mock run imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ONLY = ("flask", "flask_sqlalchemy", "flask_migrate", "gunicorn", "sqlalchemy", "alembic")

PROBE = """
import io, sys
from fiwareglancesync.cli import main
from fiwareglancesync.mock import main as load
import fiwareglancesync.examples
load(["--path", sys.argv[1], sys.argv[2]])
environ = {"GLANCESYNC_CONFIG": sys.argv[3], "GLANCESYNC_MOCKPERSISTENT_PATH": sys.argv[1]}
for argv in (["--show-status"], ["--dry-run"], []):
    assert main(argv, environ=environ, stdout=io.StringIO(), stderr=io.StringIO()) == 0
print(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def test_a_whole_mock_run_imports_none_of_the_service_libraries(tmp_path: Path) -> None:
    example = ROOT / "examples"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(tmp_path / "store"),
            str(example / "scenario"),
            str(example / "glancesync.conf"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert imported.isdisjoint(SERVICE_ONLY), imported & set(SERVICE_ONLY)
