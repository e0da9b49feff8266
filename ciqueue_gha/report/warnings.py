"""The workers' pytest warnings summaries, gathered into one for the build's report.

Each worker's pytest session prints its own "warnings summary" section: blocks of the test
ids a warning came from (one a line) above the warning, indented. The same warning from two
workers is one block here, with both workers' test ids, in the order first seen.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^=+ warnings summary( \(final\))? =+$")
_SECTION_END = re.compile(r"^(-- Docs: |=+( .*)?$)")


def summary_blocks(output: str) -> list[tuple[list[str], str]]:
    """The (test ids, warning) blocks of the warnings summaries in one session's `output`."""
    blocks: list[tuple[list[str], str]] = []
    inside = False
    ids: list[str] = []
    body: list[str] = []
    for line in [*output.splitlines(), ""]:
        if _HEADER.match(line):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith(" "):
            body.append(line)
            continue
        if body:  # a block ends at the first line that is not indented
            blocks.append((ids, "\n".join(body)))
            ids, body = [], []
        if _SECTION_END.match(line):
            inside = False
        elif line.strip():
            ids.append(line)
    return blocks


def gathered_warnings(outputs: list[str]) -> str:
    """One warnings summary for every session's `outputs`; empty when none warned."""
    merged: dict[str, list[str]] = {}
    for output in outputs:
        for ids, body in summary_blocks(output):
            seen = merged.setdefault(body, [])
            seen += [test for test in ids if test not in seen]
    if not merged:
        return ""
    blocks = ["\n".join([*ids, body]) for body, ids in merged.items()]
    return "ciqueue-gha: warnings summary (every worker's):\n" + "\n\n".join(blocks)
