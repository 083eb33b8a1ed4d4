"""``.. argparse-program:: module:function``: a command's reference, from its own parser.

The function returns the ``argparse.ArgumentParser`` the command really uses, so the
page cannot drift from the code. The directive writes a usage block, the description,
one ``.. option::`` per argument (so pages can link with ``:option:`sync.py --parallel```)
and, for a parser with subcommands, the same again for each of them, under a rubric.

Options::

   .. argparse-program:: fiwareglancesync.cli:build_parser
      :prog: sync.py          (the program name shown; default: the parser's own)
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from rst_text import inline, paragraphs
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

USAGE_WIDTH = 72  # fixed (not the terminal of whoever builds), and fits the page width


def load_parser(spec: str) -> argparse.ArgumentParser:
    module_name, _, function_name = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), function_name)
    parser = factory()
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"{spec} did not return an ArgumentParser")
    return parser


def _formatter(parser: argparse.ArgumentParser, prog: str) -> argparse.HelpFormatter:
    return parser.formatter_class(prog=prog, width=USAGE_WIDTH)


def usage(parser: argparse.ArgumentParser, prog: str) -> str:
    formatter = _formatter(parser, prog)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _signature(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """What ``.. option::`` shows: ``-p PORT, --port PORT`` or a positional's name."""
    if not action.option_strings:
        return formatter._metavar_formatter(action, action.dest)(1)[0]
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    arguments = formatter._format_args(action, action.dest.upper())
    return ", ".join(f"{option} {arguments}" for option in action.option_strings)


def _help(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.help:
        return ""
    return inline(formatter._expand_help(action))


def _documented(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        yield action


def program_lines(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    """The reST of one program: usage, description, options, epilog, subcommands."""
    formatter = _formatter(parser, prog)
    lines = [f".. program:: {prog}", "", "::", ""]
    lines += [f"   {line}" for line in usage(parser, prog).splitlines()] + [""]
    for paragraph in paragraphs(parser.description):
        lines += [paragraph, ""]
    for action in _documented(parser):
        lines += [f".. option:: {_signature(action, formatter)}", ""]
        text = _help(action, formatter)
        if text:
            lines += [f"   {text}", ""]
    for paragraph in paragraphs(parser.epilog):
        lines += [paragraph, ""]
    subcommands = _subcommands(parser)
    if subcommands is not None:
        lines += _subcommand_lines(subcommands, prog)
    return lines


def _subcommand_lines(subcommands: argparse._SubParsersAction, prog: str) -> list[str]:
    helps = {choice.dest: choice.help for choice in subcommands._choices_actions}
    lines: list[str] = []
    for name, subparser in subcommands.choices.items():
        lines += [f".. rubric:: {prog} {name}", ""]
        if helps.get(name):
            lines += [inline(helps[name]), ""]
        lines += program_lines(subparser, f"{prog} {name}")
    return lines


class ArgparseProgram(SphinxDirective):
    required_arguments = 1
    option_spec = {"prog": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        parser = load_parser(self.arguments[0])
        prog = self.options.get("prog") or parser.prog
        container = nodes.container()
        content = StringList(program_lines(parser, prog), source=self.arguments[0])
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("argparse-program", ArgparseProgram)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
