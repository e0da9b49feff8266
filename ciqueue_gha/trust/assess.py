"""A build's failures judged against its repository's quarantine and flaky history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from . import history
from .classify import Trust, classify
from .quarantine import Entry, Quarantine, load_redis, redis_today


def assess(
    client: redis.Redis,
    namespace: str,
    build: str,
    failing: Sequence[str],
    from_file: Sequence[Entry] = (),
    repeated: Mapping[str, tuple[int, int]] | None = None,
) -> Trust:
    """The standing of each `failing` test of `build` against the entries `from_file` and
    those kept in Redis for `namespace`, and the history before this build; `repeated`: the
    (failed runs, runs) of each test run several times (--repeat-new)."""
    entries = (*from_file, *load_redis(client, namespace))
    quarantine = Quarantine(entries, redis_today(client))
    known = history.load(client, namespace, failing, but=build) if failing else {}
    return classify(failing, quarantine, known, repeated)
