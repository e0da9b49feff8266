"""Cutting text to a size, and every size text is cut to, so a huge output cannot sink a
report, a request or a log line.

The ways to cut, each for where the text goes:
- `cut`: head and tail around a note of what was cut, for multi-line text whose both ends
  matter (a traceback's start names the test, its end the assertion);
- `fit_chars`: the head and ``…``, for one line (a title, a table cell);
- `fit_bytes`: the head within a number of UTF-8 bytes and a note, for the API's byte
  limits; `head_bytes` the same without the note, for a last resort that must fit;
- `shown`: the head of a value echoed in a one-line message, quoted, with its length.

Every limit is here, named for what it bounds: a module that cuts text imports its limit
rather than defining a number of its own.
"""

from __future__ import annotations

# What a record keeps (written once by a worker, read by every report).

#: Characters kept of one test's output, traceback or message in its record in Redis: a
#: test printing megabytes must not fill Redis or the summary's memory.
RECORD_TEXT_LIMIT = 64 * 1024

# What a report shows of one failure.

#: Characters of a failure's message, and of its traceback, shown beside it where it is
#: read in passing: an annotation and the summary's log. Head and tail keep the test's
#: source and the assertion; even at 4 bytes a character both stay well inside an
#: annotation's 64 KB.
FAILURE_TEXT_LIMIT = 4000
#: Characters of one failure's traceback folded under it in the job summary, before the
#: summary shrinks to fit its size: folded, it can say more than an annotation.
FOLDED_TRACEBACK_LIMIT = 10_000
#: Characters of captured output in an annotation's ``raw_details``.
DETAILS_LIMIT = 16_000
#: Characters of a test name in one row of the job summary (on one line, within a table).
ROW_NAME_LIMIT = 300
#: Characters of a failure message in one row of the job summary.
ROW_MESSAGE_LIMIT = 200

# What GitHub takes.

#: The API's limit on an annotation's title, in characters; the check run's title, which
#: has no documented limit and shows as one line, is held to it too.
TITLE_LIMIT = 255
#: The API's limit on the check run's summary and text (65,535 characters). We count UTF-8
#: bytes (DESIGN.md §3), which never exceeds the characters, so either reading holds.
OUTPUT_TEXT_LIMIT = 65_535
#: The API's limit on an annotation's message and raw details: 64 KB.
ANNOTATION_TEXT_LIMIT = 64 * 1024
#: Bytes of Markdown in the check run's summary: room under `OUTPUT_TEXT_LIMIT` for the
#: note `fit_bytes` would add, so the summary shrinks whole instead of being cut.
CHECK_SUMMARY_LIMIT = 60_000
#: GitHub's limit on one step's job summary, in bytes.
JOB_SUMMARY_LIMIT = 1024 * 1024
#: Characters of GitHub's own reply quoted in an error message (one line of the log).
API_REPLY_LIMIT = 300

# What a one-line message echoes.

#: Characters of a bad value a one-line message echoes (a 10 KB build id is not echoed whole).
VALUE_LIMIT = 100
#: Characters of Redis's own error reply a one-line message quotes (a script error can
#: carry a whole Lua traceback).
REDIS_REPLY_LIMIT = 200


def cut(text: str, limit: int = RECORD_TEXT_LIMIT) -> str:
    """`text` itself if short enough, else its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"


def fit_chars(text: str, limit: int) -> str:
    """`text` if at most `limit` characters long, else cut to that with a trailing ``…``."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_bytes(text: str, limit: int, what: str) -> str:
    """`text` if its UTF-8 form fits in `limit` bytes, else its head, cut on a character
    (at a line, where one ends near the cut) and followed by a note saying it was cut.

    Characters UTF-8 cannot carry (lone surrogates from undecodable output) become ``?``."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = f"\n\n… ({what} cut: {len(data):,} bytes, GitHub takes {limit:,})"
    head = head_bytes(text, limit - len(note.encode("utf-8")))
    line_end = head.rfind("\n")
    if line_end >= len(head) * 9 // 10:
        head = head[:line_end]
    return head + note


def head_bytes(text: str, limit: int) -> str:
    """The longest head of `text` whose UTF-8 form fits in `limit` bytes, with no note: a
    cut inside a multi-byte character leaves a partial sequence, which is dropped."""
    return text.encode("utf-8")[: max(0, limit)].decode("utf-8", "ignore")


def shown(value: object, limit: int = VALUE_LIMIT, *, quote: bool = True) -> str:
    """`value` for a one-line message: its first `limit` characters, quoted and escaped (a
    newline in it cannot break the line) unless not `quote`, and how long it was when cut."""
    text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    head = repr(head) if quote else head
    return head if len(text) <= limit else f"{head}... ({len(text)} characters)"
