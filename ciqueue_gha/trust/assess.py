"""A build's failures judged against its repository's quarantine and flaky history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from . import history
from .classify import Trust, classify
from .quarantine import Quarantine


def assess(
    client: redis.Redis,
    namespace: str,
    build: str,
    failing: Sequence[str],
    quarantine: Quarantine,
    repeated: Mapping[str, tuple[int, int]] | None = None,
) -> Trust:
    """The standing of each `failing` test of `build` against the `quarantine` in force
    (trust.quarantine.in_force) and the history before this build; `repeated`: the (failed
    runs, runs) of each test run several times (--repeat-new)."""
    known = history.load(client, namespace, failing, but=build) if failing else {}
    return classify(failing, quarantine, known, repeated)
