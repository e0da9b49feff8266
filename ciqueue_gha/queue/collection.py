"""What collecting the suite reported besides tests: files that failed to import (collection
errors) and files skipped whole (``pytest.importorskip`` or ``pytest.skip(...,
allow_module_level=True)`` at the top of a file).

Every worker collects the whole suite, so every worker sees the same reports; the first to
record a collector's report keeps it (HSETNX on the collector's node id), so the build holds
each once, however many workers hit it. A worker whose collection failed without
``--continue-on-collection-errors`` also marks the build interrupted, as plain pytest stops
there: it queues nothing, and the summary reports the errors (exit 2) at once instead of
waiting for a queue nobody fills.

Every worker also sets ``collected`` to how many reports it had (none too), before it
populates: a populated build without it, or with fewer reports than it says, lost its
collection record (evicted), which is "queue state lost", never a build reported green
without the errors it had.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from .. import defaults
from ..errors import QueueStateLost
from ..protocol.keys import BuildKeys
from .record import CaseRecord


@dataclass(frozen=True)
class CollectedReport:
    """One collector's error or skip, and the worker that recorded it."""

    case: CaseRecord  # outcome "error" or "skipped"; nodeid is the collector's (a file)
    worker: str


@dataclass(frozen=True)
class CollectionRecord:
    """What a build attempt's collection reported, in collection order."""

    reports: list[CollectedReport]
    interrupted_by: str | None  # the worker whose collection errors stopped the build
    expected: int | None = 0  # reports a worker had, at least; None: no worker's word is left

    @property
    def interrupted(self) -> bool:
        return self.interrupted_by is not None

    @classmethod
    def load(cls, client: redis.Redis, keys: BuildKeys) -> CollectionRecord:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.key("collection"))
        pipe.get(keys.key("interrupted"))
        pipe.get(keys.key("collected"))
        entries, interrupted_by, expected = pipe.execute()
        ordered = sorted((json.loads(text) for text in entries.values()), key=lambda e: e["order"])
        reports = [CollectedReport(CaseRecord(**e["case"]), e["worker"]) for e in ordered]
        return cls(reports, interrupted_by, None if expected is None else int(expected))

    def check_whole(self, keys: BuildKeys, *, populated: bool) -> None:
        """Raise `QueueStateLost` if the attempt was populated but its collection record is
        gone: what it held (errors, skips) can no longer be reported."""
        if populated and (self.expected is None or len(self.reports) < self.expected):
            raise QueueStateLost(
                f"the collection record of build {keys.build_id} attempt {keys.attempt} is "
                "gone from Redis (evicted or expired): queue state lost"
            )


def record_collection(
    client: redis.Redis,
    keys: BuildKeys,
    worker: str,
    reports: Sequence[CaseRecord],
    *,
    interrupted: bool,
    ttl: int = defaults.KEY_TTL,
) -> None:
    """Record `reports` (this worker's collection errors and skips) where no worker has yet,
    and mark the build `interrupted` if they stop it; one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.key("collected"), len(reports), ex=ttl)
    key = keys.key("collection")
    for order, case in enumerate(reports):
        entry = {"order": order, "worker": worker, "case": vars(case)}
        pipe.hsetnx(key, case.nodeid, json.dumps(entry, ensure_ascii=False))
    if reports:
        pipe.expire(key, ttl)
    if interrupted:
        pipe.set(keys.key("interrupted"), worker, nx=True, ex=ttl)
    pipe.execute()
