"""A build's failures judged against its repository's quarantine and flaky history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from . import history
from .classify import Trust, classify
from .quarantine import Quarantine, in_force


def assess(
    client: redis.Redis,
    namespace: str,
    build: str,
    failing: Sequence[str],
    quarantine: Path | Quarantine | None = None,
    repeated: Mapping[str, tuple[int, int]] | None = None,
) -> Trust:
    """The standing of each `failing` test of `build` against the quarantine (the entries of
    the file `quarantine` and those kept in Redis for `namespace`, or those `in_force` read
    already) and the history before this build; `repeated`: the (failed runs, runs) of each
    test run several times (--repeat-new)."""
    if not isinstance(quarantine, Quarantine):
        quarantine = in_force(client, namespace, quarantine)
    known = history.load(client, namespace, failing, but=build) if failing else {}
    return classify(failing, quarantine, known, repeated)
