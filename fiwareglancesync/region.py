"""A region of a target: made once, from the command line or a catalog, then passed on.

``Region`` is a region of the master target; ``target:Region`` a region of another one;
``master:Region`` is accepted and means ``Region``. The *fullname* is what operators see
in log lines, status rows and backup file names; the *name* is what the target's
Keystone catalog calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fiwareglancesync.config import MASTER
from fiwareglancesync.errors import UsageError

# A region name becomes a file name (backups, --parallel logs): no path separator, and
# no NUL, which no file name can hold. Each is named as the message shows it.
_FORBIDDEN = {"/": "'/'", "\x00": "a NUL character (\\x00)"}


@dataclass(frozen=True, order=True)
class RegionRef:
    target: str
    name: str

    @classmethod
    def from_command_line(cls, text: str) -> RegionRef:
        """A region named on the command line: spaces around the name do not count."""
        return cls.parse(text.strip())

    @classmethod
    def from_url(cls, text: str) -> RegionRef:
        """A region named in a URL: every character counts, so ``'Burgos '`` or
        ``':Burgos'`` is no spelling of ``Burgos``."""
        if text != text.strip() or text.startswith(":"):
            raise UsageError(f"bad region name {text!r}: no such region")
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> RegionRef:
        """``'Region'``, ``'target:Region'`` or ``'master:Region'``; a UsageError otherwise."""
        if text.count(":") > 1:
            raise UsageError(f"bad region name {text!r}: use Region or target:Region")
        for character, shown in _FORBIDDEN.items():
            if character in text:
                raise UsageError(f"bad region name {text!r}: a region name cannot contain {shown}")
        target, _, name = text.rpartition(":")
        if not name:
            raise UsageError(f"bad region name {text!r}: the region is missing")
        return cls(target or MASTER, name)

    @property
    def fullname(self) -> str:
        return self.name if self.target == MASTER else f"{self.target}:{self.name}"

    def __str__(self) -> str:
        return self.fullname


def whole_target(text: str) -> str | None:
    """The target a command-line name stands for every region of (``'target:'``, and
    ``':'`` for the master's), or None when ``text`` names one region."""
    stripped = text.strip()
    if stripped.endswith(":") and stripped.count(":") == 1:
        return stripped[:-1] or MASTER
    return None
