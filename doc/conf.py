"""Sphinx configuration of the GlanceSync documentation.

Build it with ``sphinx-build -W doc doc/_build/html`` (the test suite does the same into a
temporary folder, so a warning fails the tests). Generated parts come from the code
itself: the command references from the argument parsers, the REST reference from the
service's OpenAPI document, the option reference and the sample configuration from
``fiwareglancesync.config.OPTIONS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent
ROOT = DOC.parent
# The checkout's own package (documented as it is, installed or not) and our extensions.
sys.path[:0] = [str(ROOT), str(DOC / "_ext")]

from fiwareglancesync import __version__  # noqa: E402 - needs the path above

project = "GlanceSync"
author = "the GlanceSync developers"
project_copyright = "the GlanceSync developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["glancesync_argparse", "glancesync_openapi", "glancesync_options"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/.*"]
# Command lines are copied from these pages: '--config' must not become an en dash,
# nor quotes curly ones.
smartquotes = False
nitpicky = False
highlight_language = "none"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"GlanceSync {release}"
html_theme_options = {
    "description": "Keep the Glance images of an OpenStack federation in step",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_static_path: list[str] = []
html_show_sourcelink = False
