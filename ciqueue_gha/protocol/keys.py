"""Every Redis key name of ciqueue-gha is built here.

All keys of one build attempt share the prefix ``ciq:{<build-id>}:<attempt>:``. The braces
are a Redis Cluster hash tag, so every key of a build lands in one slot and every script
runs on a cluster too. Scripts receive the whole key vector, in the order of `QUEUE_KEYS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from ..truncate import shown

# Letters, digits and ._- only: braces would break the hash tag, spaces and colons the key layout.
_BUILD_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

#: The per-attempt keys, in the order the Lua prelude (lua/_prelude.lua) names them.
QUEUE_KEYS = (
    "leader",  # string: worker id of the populating worker
    "ready",  # string: set once the queue is populated
    "total",  # string: number of tests populated
    "digest",  # string: sha256 of the sorted test ids populated
    "tests",  # list: every populated test id
    "queue",  # list: tests waiting for a lease
    "running",  # zset: test -> lease deadline (ms, Redis clock)
    "leases",  # hash: test -> "<current lease id> <worker holding it>"
    # hash: worker -> [seq, unit, lease, unit, lease, ...]: its last granted reserve (a window),
    # for a retried call and for the heartbeat of leases whose reply the worker has not read
    "reservations",
    "lease-counter",  # string: last lease id issued (the fencing token)
    "attempts",  # hash: lease id -> attempt record (JSON, written by Python)
    # hash: lease id -> stale | requeued (makes retries idempotent); a final attempt has
    # none: its test's entry in results names it
    "dispositions",
    "last-attempt",  # hash: test -> "<lease>:<outcome>" of its latest stale attempt
    "results",  # hash: test -> lease id of the attempt that finalized it
    "failed",  # string: number of tests finalized as failed
    "requeues",  # hash: test -> times requeued
    "requeued",  # string: requeues over the whole build
    "takeovers",  # hash: test -> times its expired lease was taken over
    "workers",  # zset: worker -> last time seen (ms, Redis clock); live ones share the queue's end
    "ended",  # list: one element once every test is finalized (the supervisor blocks on it)
    "claims",  # CLAIM_KEYS': its started workers count toward a window's fair share
)


#: Worker ids in use, kept apart from `QUEUE_KEYS`: no queue script reads them, and claim.lua
#: gets these alone (its KEYS, in this order).
CLAIM_KEYS = (
    "claims",  # hash: worker id -> "<token> <deadline ms>" of the live process using it
    "collisions",  # hash: worker id taken as "<id>~<n>" -> the id asked for (already in use)
)

#: The circuit breaker's keys (trip.lua gets them after the key vector, in this order).
BREAKER_KEYS = (
    "tripped",  # hash: worker -> JSON of why it stopped taking work (queue/breaker.py)
    "given-back",  # hash: unit -> the worker whose streak gave it back to the queue
    "stopped",  # the RECORD_KEYS one: set when the last live worker trips
)

#: The highest attempt number taken: far above GitHub's own limit on re-runs; a summary
#: reads attempts 1 to N, so 10**12 would never finish.
MAX_ATTEMPT = 1000

#: Keys of a build attempt that only Python writes (no script needs them).
RECORD_KEYS = (
    "strays",  # hash: worker -> JSON list of tests it collected that the queue does not hold
    "stopped",  # string: set once a worker was told to stop (--max-failures reached)
    "collection",  # hash: collector node id -> JSON of its error or skip, first worker's (HSETNX)
    "interrupted",  # string: worker id whose collection errors stopped the build (as pytest's)
    "collected",  # string: how many collection reports a worker recorded (set even when none)
    "basis",  # string: the earlier attempt a retry queued from (0: the whole suite); by populate
    "verdict",  # string: what a retry needs of this attempt (queue/verdict.py); kept 30 days
)


def validate_build_id(build_id: str) -> str:
    """Return `build_id` unchanged, or raise `UsageError` naming what is wrong with it."""
    if not _BUILD_ID.fullmatch(build_id):
        raise UsageError(
            f"invalid build id {shown(build_id)}: use 1 to 128 letters, digits, '.', '_' or '-'"
        )
    return build_id


@dataclass(frozen=True)
class BuildKeys:
    """The key names of one attempt of one build."""

    build_id: str
    attempt: int = 1

    def __post_init__(self) -> None:
        validate_build_id(self.build_id)
        if not 1 <= self.attempt <= MAX_ATTEMPT:
            raise UsageError(
                f"invalid attempt {shown(self.attempt)}: attempts count from 1 to {MAX_ATTEMPT}"
            )

    @property
    def prefix(self) -> str:
        return f"ciq:{{{self.build_id}}}:{self.attempt}:"

    def key(self, name: str) -> str:
        if name not in (*QUEUE_KEYS, *RECORD_KEYS, *CLAIM_KEYS, *BREAKER_KEYS):
            raise KeyError(name)
        return self.prefix + name

    def queue_keys(self) -> list[str]:
        """The key vector every script receives as KEYS."""
        return [self.prefix + name for name in QUEUE_KEYS]

    def status_keys(self) -> list[str]:
        """The key vector status.lua receives: the queue's, then stopped, interrupted, basis."""
        return [*self.queue_keys(), *map(self.key, ("stopped", "interrupted", "basis"))]

    def claim_keys(self) -> list[str]:
        """The key vector claim.lua receives as KEYS."""
        return [self.prefix + name for name in CLAIM_KEYS]


def durations_key(namespace: str) -> str:
    """The hash of test durations shared by every build of `namespace` (a repository)."""
    return f"ciq:durations:{{{namespace}}}"


def quarantine_key(namespace: str) -> str:
    """The hash of quarantine entries kept by `ciqueue-gha quarantine` for `namespace`."""
    return f"ciq:quarantine:{{{namespace}}}"


def outcomes_key(namespace: str) -> str:
    """The hash of each test's recent outcomes across the builds of `namespace`."""
    return f"ciq:outcomes:{{{namespace}}}"
