"""Cutting text to a size, keeping its head and tail, so a huge output cannot sink a report."""

from __future__ import annotations

#: Characters kept of one test's output, traceback or message.
TEXT_LIMIT = 64 * 1024


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` itself if short enough, else its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"
