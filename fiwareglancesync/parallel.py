"""``--parallel``: up to ``max_children`` regions at once, each in a forked child process.

A child does one region: its log goes to ``sync_<date>/<region>.txt``, its result (did
the region succeed, and its status rows) to a small file the parent reads when the child
has ended. The parent starts no more children than there are regions, and never more
than ``max_children`` at once.

Interruption: Ctrl-C reaches the whole process group, so children ignore SIGINT and the
parent decides. On Ctrl-C or SIGTERM the parent starts no more regions and sends SIGTERM
to the children it started (by PID): in a child SIGTERM interrupts the work like Ctrl-C,
so an upload in flight deletes its half-made image before the child ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fiwareglancesync.figures import RegionFigures
from fiwareglancesync.region import RegionRef

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often the parent looks for children that have ended
STOP_SECONDS = 60.0  # how long interrupted children get to clean up before SIGKILL
_STOPPING_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # what stops a run (see cli)

Row = tuple[str, ...]


@dataclass
class Outcome:
    """What became of one region: did it succeed, what it produced, in plain data.

    ``rows`` are ``--show-status`` rows, ``entries`` the same statuses for the JSON and
    HTML reports, ``error`` the line that said why the region failed, ``figures`` what
    the metrics file reports (None: a child that died before telling). All of it crosses
    from a child to the parent as JSON.
    """

    region: str
    ok: bool
    rows: list[Row] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    figures: RegionFigures | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        figures = data.get("figures")
        data = dict(
            data,
            rows=[tuple(row) for row in data.get("rows", [])],
            figures=None if figures is None else RegionFigures.from_json(figures),
        )
        return cls(**data)


@dataclass
class _Child:
    region: RegionRef
    pid: int
    result: Path


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class ForkPool:
    """Runs ``work(region, log_stream)`` for each region in forked children."""

    def __init__(self, max_children: int, log_dir: Path):
        self.max_children = max(1, max_children)
        self.log_dir = log_dir
        self.running: dict[int, _Child] = {}
        self.started = 0
        self.peak = 0  # the most children that ran at once (for tests and benchmarks)

    def run(
        self,
        regions: Sequence[RegionRef],
        work: Callable[[RegionRef, TextIO], Outcome],
        on_done: Callable[[Outcome], None],
    ) -> list[Outcome]:
        waiting = deque(regions)
        outcomes: dict[str, Outcome] = {}
        order = [region.fullname for region in regions]
        try:
            while waiting or self.running:
                while waiting and len(self.running) < self.max_children:
                    self._start(waiting.popleft(), work)
                    self.peak = max(self.peak, len(self.running))
                for outcome in self._collect():
                    outcomes[outcome.region] = outcome
                    on_done(outcome)
        except KeyboardInterrupt:
            self.stop()
            raise
        return [outcomes[region] for region in order]

    # ------------------------------------------------------------------- children

    def _start(self, region: RegionRef, work: Callable[[RegionRef, TextIO], Outcome]) -> None:
        self.started += 1
        result = self.log_dir / f".result-{self.started}.json"
        log_path = self.log_dir / f"{region.fullname}.txt"
        # A signal between the fork and the bookkeeping would leave a child that stop()
        # does not know of (still holding the run's stdout); and one in the child before
        # it has its own handlers would run the parent's code there. Both wait.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the child: never returns
                self._child(region, work, log_path, result, previous)
            self.running[pid] = _Child(region, pid, result)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    @staticmethod
    def _child(
        region: RegionRef,
        work: Callable[[RegionRef, TextIO], Outcome],
        log_path: Path,
        result: Path,
        mask: set[signal.Signals],
    ) -> None:
        status = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
            signal.signal(signal.SIGTERM, _raise_interrupt)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            with open(log_path, "a", encoding="utf-8") as log:
                outcome = work(region, log)
                result.write_text(json.dumps(outcome.to_json()), encoding="utf-8")
                status = 0 if outcome.ok else 1
        except KeyboardInterrupt:
            status = 130
        except BaseException:
            logger.exception("%s: the child process failed", region)
        finally:
            logging.shutdown()
            os._exit(status)  # no atexit handlers, no flush of the parent's buffers

    def _collect(self) -> list[Outcome]:
        """The outcomes of the children that have ended; waits a little if none has."""
        ended = []
        for pid, child in list(self.running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del self.running[pid]
                ended.append(self._outcome(child, status))
        if not ended:
            time.sleep(POLL_SECONDS)
        return ended

    @staticmethod
    def _outcome(child: _Child, status: int) -> Outcome:
        try:
            recorded = json.loads(child.result.read_text(encoding="utf-8"))
            child.result.unlink()
            return Outcome.from_json(recorded)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if os.WIFSIGNALED(status):
            cause = f"killed by signal {os.WTERMSIG(status)}"
        else:
            cause = f"exit status {os.waitstatus_to_exitcode(status)}"
        logger.error("%s: the child process failed: %s", child.region, cause)
        return Outcome(child.region.fullname, False)

    def stop(self) -> None:
        """Stop the running children (ours, by PID) and wait for them, within bounds."""
        for pid in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.running:
            for pid in list(self.running):
                if _has_ended(pid) or _killed_when_late(pid, deadline):
                    child = self.running.pop(pid)
                    with contextlib.suppress(OSError):
                        child.result.unlink()
            if self.running:
                time.sleep(POLL_SECONDS)


def _has_ended(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _killed_when_late(pid: int, deadline: float) -> bool:
    """Past the deadline, a child that still cleans up is killed (and reaped)."""
    if time.monotonic() < deadline:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return True
