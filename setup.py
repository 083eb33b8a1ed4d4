"""The metadata lives in pyproject.toml; this adds the bundled example to the build.

The example configuration and scenario stay at the repository root (``examples/``), where
``run_example.sh`` and the tests read them. Building copies them into the package, as
``fiwareglancesync/examples/``, so an installed GlanceSync carries them too
(``python -m fiwareglancesync.examples`` prints where).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLES = Path(__file__).resolve().parent / "examples"


class BuildWithExample(build_py):
    """build_py, plus the repository's examples/ copied into the built package."""

    def run(self) -> None:
        super().run()
        # An editable install finds the checkout's examples/ by itself.
        if getattr(self, "editable_mode", False) or not EXAMPLES.is_dir():
            return
        target = Path(self.build_lib) / "fiwareglancesync" / "examples"
        for source in sorted(EXAMPLES.rglob("*")):
            if source.is_file():
                destination = target / source.relative_to(EXAMPLES)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildWithExample})
