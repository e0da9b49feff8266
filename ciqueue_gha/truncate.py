"""Cutting text to a size, keeping its head and tail, so a huge output cannot sink a report."""

from __future__ import annotations

#: Characters kept of one test's output, traceback or message.
TEXT_LIMIT = 64 * 1024

#: Characters of a bad value a one-line message echoes (a 10 KB build id is not echoed whole).
VALUE_LIMIT = 100


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` itself if short enough, else its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"


def shown(value: object, limit: int = VALUE_LIMIT) -> str:
    """`value` quoted for a one-line message: its first `limit` characters, escaped (a newline
    in it cannot break the line), and how long it was when cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
