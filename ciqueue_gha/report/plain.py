"""Text from the code under test made safe to show anywhere: no colour codes, no control
characters (which the API, Markdown and the log each treat differently), LF line ends."""

from __future__ import annotations

import re

from ..truncate import fit_chars

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """`text` without ANSI escape sequences and control characters other than tab and LF."""
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace runs as one space), at most `limit` characters."""
    return fit_chars(" ".join(plain(text).split()), limit)
