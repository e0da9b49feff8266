"""A build's failures judged against its repository's quarantine and flaky history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from . import history
from .classify import Trust, classify
from .quarantine import in_force


def assess(
    client: redis.Redis,
    namespace: str,
    build: str,
    failing: Sequence[str],
    quarantine_file: Path | None = None,
    repeated: Mapping[str, tuple[int, int]] | None = None,
) -> Trust:
    """The standing of each `failing` test of `build` against the quarantine (the entries of
    `quarantine_file` and those kept in Redis for `namespace`) and the history before this
    build; `repeated`: the (failed runs, runs) of each test run several times
    (--repeat-new)."""
    quarantine = in_force(client, namespace, quarantine_file)
    known = history.load(client, namespace, failing, but=build) if failing else {}
    return classify(failing, quarantine, known, repeated)
