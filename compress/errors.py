"""The one domain exception. It is raised anywhere and caught only by the CLI."""

from __future__ import annotations

import unicodedata

# Characters a terminal does not show (or shows as something else): controls, format characters such as the
# zero-width space and the bidirectional overrides, unassigned and private code points, line and paragraph
# separators, and spaces other than the plain one.
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}


def visible(text: str) -> str:
    """``text`` with every character a terminal would not show escaped as Python writes it (``\\u200b``,
    ``\\x1b``, ``\\n``), so that an error line shows what the file really holds: a key with a zero-width space in
    it does not look like the valid key it is not."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _HIDDEN and ch != " " else ch for ch in text)


def ascii_only(text: str) -> str:
    """``text`` with every non-ASCII character escaped (``d\\u0430ta``, a Cyrillic a): for what must be ASCII (the
    config's keys, a choice among ASCII values), where a look-alike letter is the mistake to show."""
    return text if text.isascii() and text.isprintable() else "".join(
        ch if ch.isascii() and ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    return ascii(ch)[1:-1]


class CompressError(Exception):
    """A problem the user can fix. Each item of ``problems`` is printed as one line, its invisible characters
    escaped (:func:`visible`).

    Example: ``CompressError("distill.temperature: must be > 0, got -1")``.
    """

    def __init__(self, *problems: str):
        self.problems = [visible(p) for p in problems if p]
        super().__init__("\n".join(self.problems))


class ConfigError(CompressError):
    """The pipeline file or an override is wrong; nothing has been run or written."""
