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


def shown(value: object, limit: int = VALUE_LIMIT, *, quote: bool = True) -> str:
    """`value` for a one-line message: its first `limit` characters, quoted and escaped (a
    newline in it cannot break the line) unless not `quote`, and how long it was when cut."""
    text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    head = repr(head) if quote else head
    return head if len(text) <= limit else f"{head}... ({len(text)} characters)"
