"""sync.py's output: log records as ``LEVEL:message``, and a closed pipe that ends quietly."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LOG_FORMAT = "%(levelname)s:%(message)s"
PACKAGE_LOGGER = "fiwareglancesync"


class OutputClosed(Exception):
    """Whoever read standard output went away (``sync.py --show-status | head``)."""


def silence_closed_output(stream: TextIO) -> None:
    """Point a closed standard output at /dev/null, so that nothing more fails on it.

    Python flushes standard output once more at exit; on a closed pipe that would print
    an error after the run is over.
    """
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # an in-memory stream (tests): nothing to redirect
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


class PipeSafeHandler(logging.StreamHandler):
    """A stream handler that goes quiet when its reader is gone, instead of failing.

    A sync whose output is piped into ``head`` or a pager that quits carries on: its
    work must not stop because nobody reads the log any more.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            silence_closed_output(self.stream)
            return
        super().handleError(record)


def configure_logging(stream: TextIO, debug: bool = False) -> None:
    """Send every record to ``stream``; GlanceSync's own from INFO, libraries' from WARNING."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = PipeSafeHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger(PACKAGE_LOGGER).setLevel(logging.DEBUG if debug else logging.INFO)


def write_data(out: TextIO, write: object) -> None:
    """Run ``write()`` (which writes to ``out``) and flush; a closed pipe is OutputClosed."""
    try:
        write()  # type: ignore[operator]
        out.flush()
    except BrokenPipeError:
        raise OutputClosed from None


def program_name(module_file: str, module: str, fallback: str) -> str:
    """The name the user typed for this program, for ``--help`` and ``--version``.

    ``sync.py``, ``glancesync`` or ``glancesync-mock`` as typed (its base name), or
    ``python -m MODULE`` when Python ran the module's own file; ``fallback`` when the
    command line says nothing (``python -c``, an embedding program).
    """
    typed = sys.argv[0] if sys.argv else ""
    if not typed or typed == "-c":
        return fallback
    if os.path.abspath(typed) == os.path.abspath(module_file):
        return f"python -m {module}"
    return os.path.basename(typed)
