"""``.. glancesync-options::`` and ``.. glancesync-sample::``: the configuration reference.

Both are made, when the documentation is built, from the option table the parser itself
uses (``fiwareglancesync.config.OPTIONS``), so the pages cannot drift from the code:

- ``glancesync-options`` writes the option reference, one definition per option (a
  definition list rather than a table: long defaults and help texts wrap within the page
  instead of widening it);
- ``glancesync-sample`` writes a commented configuration file listing every option, as
  an INI literal block that loads as it is.

Run as a script it prints the sample, or with ``--rst`` the reference:
``python doc/_ext/glancesync_options.py > glancesync.conf``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

if __name__ == "__main__":
    # Run as a script: the checkout's own package, installed or not, as conf.py does.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fiwareglancesync.config import MAIN, MASTER, OPTIONS, Option
from fiwareglancesync.osenv import CREDENTIAL_VARIABLES

SAMPLE_WIDTH = 78
# Given in the sample through ``credential``; the note after [master] names them.
_SEPARATE_PIECES = ("user", "password", "keystone_url", "tenant")


def _comment(text: str, width: int = SAMPLE_WIDTH) -> list[str]:
    lines, current = [], "#"
    for word in text.split():
        if len(current) + 1 + len(word) > width:
            lines.append(current)
            current = "#"
        current += " " + word
    lines.append(current)
    return lines


def _default_text(option: Option) -> str:
    return "" if option.default in (None, ()) else str(option.default)


def _sample_value(option: Option) -> str:
    return option.example if option.example is not None else _default_text(option)


def _sample_section(title: str, scope: str) -> list[str]:
    lines = [f"[{title}]", ""]
    for option in OPTIONS:
        if option.scope != scope or option.name in _SEPARATE_PIECES:
            continue
        lines.extend(_comment(option.help))
        lines.append(f"# (default: {_default_text(option) or 'empty'})")
        prefix = "" if option.name in ("master_region", "credential") else "# "
        lines.append(f"{prefix}{option.name} = {_sample_value(option)}".rstrip())
        lines.append("")
    return lines


def _environment_note() -> list[str]:
    names = [
        first + (f" (or {', '.join(others)})" if others else "")
        for first, *others in CREDENTIAL_VARIABLES.values()
    ]
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return _comment(f"For [master] only, missing pieces come from {listed}.")


def sample_config() -> str:
    """A commented configuration file listing every option, made from ``OPTIONS``."""
    lines = [
        "# GlanceSync configuration (generated from fiwareglancesync.config.OPTIONS).",
        "# Every target option may also be set in [DEFAULT], inherited by all targets.",
        "",
        *_sample_section(MAIN, MAIN),
        *_sample_section(MASTER, "target"),
        "# Instead of credential: user, password (in clear), keystone_url and tenant.",
        *_environment_note(),
        "",
        "# Another target: regions behind another Keystone (or the same one with",
        "# other selection rules), named on the command line as 'other:Region'.",
        "[other]",
        "credential = admin2,c2VjcmV0Mg==,http://keystone2.example.org:5000/v3,admin",
        "metadata_condition = image.is_public and \\",
        "    image.user_properties.get('type', None) == 'baseimages'",
        "",
    ]
    return "\n".join(lines)


def options_table() -> str:
    """The option reference in reStructuredText, made from ``OPTIONS``."""
    lines: list[str] = []
    for option in OPTIONS:
        section = "``[main]``" if option.scope == MAIN else "a target, or ``[DEFAULT]``"
        default = _default_text(option)
        lines += [
            f"``{option.name}``",
            f"   *In* {section}; *default:* {f'``{default}``' if default else '(none)'}.",
            f"   {option.help}",
            "",
        ]
    return "\n".join(lines).rstrip("\n")


class OptionReference(SphinxDirective):
    """``.. glancesync-options::``: every option, where it goes, its default, its meaning."""

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        content = StringList(options_table().splitlines(), source="fiwareglancesync.config")
        nested_parse_with_titles(self.state, content, container)
        return container.children


class SampleConfiguration(SphinxDirective):
    """``.. glancesync-sample::``: the commented sample configuration, as an INI block."""

    def run(self) -> list[nodes.Node]:
        text = sample_config()
        block = nodes.literal_block(text, text)
        block["language"] = "ini"
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("glancesync-options", OptionReference)
    app.add_directive("glancesync-sample", SampleConfiguration)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    print(options_table() if sys.argv[1:] == ["--rst"] else sample_config())
