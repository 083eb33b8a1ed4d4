"""The documentation site builds warning-free, and its generated pages cover the code.

The command reference comes from the argument parsers, the REST reference from the
OpenAPI document, the configuration reference and sample from the option table; these
tests check that every option and every operation made it into the HTML, that the sample
loads, and that troubleshooting covers every status the planner can produce.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from fiwareglancesync.plan import STATUSES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "doc"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", DOC, out],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stderr}\n{done.stdout}"
    return out


def page_text(site: Path, name: str) -> str:
    """The page's text, tags removed and entities decoded, whitespace collapsed."""
    raw = (site / f"{name}.html").read_text(encoding="utf-8")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def parsers() -> Iterator[argparse.ArgumentParser]:
    from fiwareglancesync.agent.cli import build_parser as agent_parser
    from fiwareglancesync.app.cli import build_parser as service_parser
    from fiwareglancesync.cli import build_parser as sync_parser
    from fiwareglancesync.mock import _parser as mock_parser

    pending = [sync_parser(), mock_parser(), service_parser(), agent_parser()]
    while pending:
        parser = pending.pop()
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())


def test_every_page_is_built(site: Path) -> None:
    for source in DOC.glob("*.rst"):
        assert (site / f"{source.stem}.html").is_file(), source.name


def test_the_command_reference_has_every_option_of_every_command(site: Path) -> None:
    text = page_text(site, "cli-reference")
    for parser in parsers():
        for action in parser._actions:
            for option in action.option_strings:
                assert option in text, f"{parser.prog}: {option} is not documented"


def test_the_rest_reference_has_every_operation_and_status(site: Path) -> None:
    document = yaml.safe_load((ROOT / "fiwareglancesync/app/openapi.yaml").read_text())
    text = page_text(site, "api")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert f"{method.upper()} {path}" in text
            for status in operation["responses"]:
                assert str(status) in text
    for schema in document["components"]["schemas"]:
        assert schema in text


def extension(name: str) -> ModuleType:
    """One of the docs' own extensions (doc/_ext), imported as Sphinx imports it."""
    spec = importlib.util.spec_from_file_location(name, DOC / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collapsed(text: str) -> str:
    return " ".join(text.split())


def test_the_option_reference_is_generated_from_the_option_table(site: Path) -> None:
    from fiwareglancesync.config import OPTIONS

    text = page_text(site, "configuration")
    for option in OPTIONS:
        assert option.name in text
        assert collapsed(option.help) in text, f"{option.name}: its help is not on the page"
        default = "" if option.default in (None, ()) else str(option.default)
        assert f"default: {default or '(none)'}" in text, f"{option.name}: its default"


def test_the_sample_configuration_lists_every_option_and_loads() -> None:
    from fiwareglancesync.config import OPTIONS, build_config, read_config_text

    sample = extension("glancesync_options").sample_config()
    for option in OPTIONS:
        assert option.name in sample
    config = build_config(read_config_text(sample, "sample"), {}, "sample")
    assert config.master_region and "other" in config.targets


def test_the_configuration_page_shows_the_generated_sample(site: Path) -> None:
    sample = extension("glancesync_options").sample_config()
    assert collapsed(sample) in page_text(site, "configuration")


def test_troubleshooting_covers_every_status_and_links_the_statuses_page() -> None:
    source = (DOC / "troubleshooting.rst").read_text()
    for status in STATUSES:
        assert f"``{status}``" in source, f"troubleshooting.rst does not mention {status}"
    assert ":doc:`statuses`" in source
