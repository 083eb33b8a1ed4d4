"""Turn the plain text of help strings and API descriptions into safe reStructuredText.

Help strings and the OpenAPI document are written for terminals and Markdown readers:
`single backticks` mark code, and characters such as ``*``, ``|`` or ``_`` carry no
meaning. Emitting them verbatim into reST would make emphasis, substitutions or
references out of them (and warnings, which fail the build), so everything but the
backtick spans is escaped and the spans become inline literals.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"`([^`]+)`")
_SPECIAL = re.compile(r"([\\*|_`<>\[\]])")


def escape(text: str) -> str:
    """Escape every character reST could read as markup."""
    return _SPECIAL.sub(r"\\\1", text)


def literal(text: str) -> str:
    """An inline literal, whatever the text holds (backticks are never nested)."""
    return f"``{text}``" if text else ""


def inline(text: str) -> str:
    """One line of reST: `code` spans become literals, everything else is escaped."""
    text = " ".join(text.split())
    parts: list[str] = []
    position = 0
    for match in _CODE.finditer(text):
        parts.append(escape(text[position : match.start()]))
        # An inline literal must stand between spaces or punctuation: an escaped space
        # (which renders as nothing) separates it from a letter next to it.
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        prefix = "\\ " if before.isalnum() else ""
        suffix = "\\ " if after.isalnum() else ""
        parts.append(prefix + literal(match.group(1)) + suffix)
        position = match.end()
    parts.append(escape(text[position:]))
    return "".join(parts)


def paragraphs(text: str | None) -> list[str]:
    """Blank-line separated paragraphs of ``text``, each one line of reST."""
    if not text:
        return []
    blocks = re.split(r"\n\s*\n", text.strip())
    return [inline(block) for block in blocks if block.strip()]
