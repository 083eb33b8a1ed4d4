"""The one way a yes/no word is read: configuration options, backup cells, service settings.

One word set everywhere, case-insensitive: ``1/yes/true/on`` and ``0/no/false/off``.
Anything else is an error for the caller to report in its own words; what an empty
value means (usually the default) is the caller's decision too.
"""

from __future__ import annotations

TRUE_WORDS = frozenset({"1", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "no", "false", "off"})


def parse_bool(text: str) -> bool:
    """``text`` as a boolean; ValueError (naming the accepted words) for anything else."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text.strip()!r} is not a boolean (use true/false, yes/no, on/off, 1/0)")
