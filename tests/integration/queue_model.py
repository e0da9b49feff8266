"""The model the queue state machine (test_queue_model.py) checks Redis against: a plain-Python
reading of DESIGN.md §2 with lease windows, and Redis's state read in one transaction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import redis

from ciqueue_gha import defaults
from ciqueue_gha.protocol.keys import QUEUE_KEYS, BuildKeys
from ciqueue_gha.queue import Done, Lease, Wait, Window

#: Seconds: long enough that no lease expires on its own while an example runs.
LEASE_TIMEOUT = 600.0

FAILURES = ("failed", "error")

#: What a reserve returns: a window of leases, a wait, or the end.
Grant = Window | Wait | Done

#: One attempt of a batch acknowledge: its lease, its outcome, whether to requeue a failure.
Entry = tuple[Lease, str, bool]


# --- the model ------------------------------------------------------------------------------


@dataclass
class Run:
    """A running test: its current lease, the worker holding it, and its deadline.

    `deadline` is a past deadline (ms) the harness wrote, or None for a live one (Redis's
    now + lease timeout: the model does not know Redis's clock, only that it is ahead).
    """

    lease: int
    holder: str
    deadline: int | None = None


@dataclass
class Model:
    """What DESIGN.md §2 says the queue holds after each operation."""

    tests: list[str]
    max_requeues: int
    build_requeue_cap: int
    max_failures: int | None
    queue: list[str] = field(default_factory=list)
    running: dict[str, Run] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)  # test -> lease that finalized it
    attempts: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # lease -> test, ...
    dispositions: dict[int, str] = field(default_factory=dict)
    last_attempt: dict[str, tuple[int, str]] = field(default_factory=dict)  # latest stale one
    failed: int = 0
    requeues: dict[str, int] = field(default_factory=dict)
    requeued: int = 0
    takeovers: dict[str, int] = field(default_factory=dict)
    lease_counter: int = 0
    # worker -> the seq and the (unit, lease id) pairs of its last granted reserve
    reservations: dict[str, tuple[int, list[tuple[str, int]]]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # each worker's last reserve call number
    seen: set[str] = field(default_factory=set)  # workers that reserved or heartbeat (all live)

    @property
    def exhausted(self) -> bool:
        return not self.queue and not self.running and len(self.results) == len(self.tests)

    def holds(self, lease: Lease) -> bool:
        run = self.running.get(lease.unit)
        return run is not None and run.lease == lease.id

    def next_seq(self, worker: str) -> int:
        self.seq[worker] = self.seq.get(worker, 0) + 1
        return self.seq[worker]

    def grant(self, units: list[str], taken_over: int, worker: str, seq: int) -> Window:
        leases = []
        for n, unit in enumerate(units):
            self.lease_counter += 1
            if n < taken_over:
                self.takeovers[unit] = self.takeovers.get(unit, 0) + 1
            self.running[unit] = Run(self.lease_counter, worker)
            leases.append(Lease(unit, self.lease_counter))
        self.reservations[worker] = (seq, [(lease.unit, lease.id) for lease in leases])
        return Window(tuple(leases))

    def last_grant(self, worker: str) -> list[Lease]:
        """The leases of `worker`'s last granted reserve that are still its own."""
        _, pairs = self.reservations.get(worker, (0, []))
        return [Lease(u, lease) for u, lease in pairs if self.holds(Lease(u, lease))]

    def finalize(self, test: str, lease: int, outcome: str) -> None:
        del self.running[test]
        self.last_attempt.pop(test, None)
        self.results[test] = lease
        self.dispositions[lease] = "final"
        if outcome in FAILURES:
            self.failed += 1

    def expired(self) -> list[str]:
        """Running tests whose deadline passed, in the order the running zset sorts them."""
        past = {t: run.deadline for t, run in self.running.items() if run.deadline is not None}
        return sorted(past, key=lambda t: (past[t], t))

    def reserve(self, worker: str, seq: int, count: int = 1, holding: int = 0) -> Grant:
        self.seen.add(worker)
        last = self.reservations.get(worker)
        if last is not None and last[0] == seq and (kept := self.last_grant(worker)):
            # A retry whose reply was lost: the leases still its own, their deadlines moved.
            for lease in kept:
                self.running[lease.unit].deadline = None
            return Window(tuple(kept))
        if self.max_failures is not None and self.failed >= self.max_failures:
            return Done("stopped")
        if count > 1 or holding:  # a live worker's share (reserve.lua's window)
            live = len(self.seen)
            free = math.ceil((len(self.queue) + len(self.expired())) / live)
            share = math.ceil((len(self.queue) + len(self.running)) / live) - holding
            least = min(count, len(self.expired())) if holding else 1
            count = max(least, min(count, free, share))
        units: list[str] = []
        while len(units) < count and (expired := [t for t in self.expired() if t not in units]):
            if expired[0] in self.last_attempt:
                self.finalize(expired[0], *self.last_attempt[expired[0]])  # run once: not again
            else:
                units.append(expired[0])
        taken_over = len(units)
        while len(units) < count and self.queue:
            units.append(self.queue.pop(0))
        if units:
            return self.grant(units, taken_over, worker, seq)
        return Wait(LEASE_TIMEOUT) if self.running else Done("exhausted")

    def settle(
        self, worker: str, entries: list[Entry], seq: int, count: int, holding: int = 0
    ) -> tuple[list[str], Grant | None]:
        """A batch acknowledge of `entries` (distinct leases), then a reserve of `count` if
        `seq` is not 0 (by a worker holding `holding` leases besides)."""
        dispositions = []
        for lease, outcome, requeue in entries:
            disposition = self.dispositions.get(lease.id)
            if disposition is None:
                disposition = self._settle(worker, lease, outcome, requeue)
            dispositions.append(disposition)
        return dispositions, self.reserve(worker, seq, count, holding) if seq else None

    def _settle(self, worker: str, lease: Lease, outcome: str, requeue: bool) -> str:
        test = lease.unit
        self.attempts[lease.id] = (test, worker, outcome)
        if not self.holds(lease):
            self.dispositions[lease.id] = "stale"
            if test not in self.results:
                self.last_attempt[test] = (lease.id, outcome)
            return "stale"
        if (
            requeue
            and outcome in FAILURES
            and self.requeues.get(test, 0) < self.max_requeues
            and self.requeued < self.build_requeue_cap
        ):
            self.requeues[test] = self.requeues.get(test, 0) + 1
            self.requeued += 1
            del self.running[test]
            self.last_attempt.pop(test, None)
            self.queue.insert(defaults.REQUEUE_OFFSET, test)
            self.dispositions[lease.id] = "requeued"
            return "requeued"
        self.finalize(test, lease.id, outcome)
        return "final"

    def heartbeat(self, worker: str, leases: list[Lease]) -> list[bool]:
        """One call for `leases`: each extended while still current, and the worker's latest
        grant with them, unless none is current."""
        extended = [self.holds(lease) for lease in leases]
        if not any(extended):
            return extended  # a stale worker's call changes nothing
        self.seen.add(worker)
        for lease in [*(lease for lease in leases if self.holds(lease)), *self.last_grant(worker)]:
            self.running[lease.unit].deadline = None
        return extended

    def give_back(self, leases: list[Lease]) -> list[str]:
        """Those of `leases` still current go back to the head of the queue, in order."""
        back = [lease.unit for lease in leases if self.holds(lease)]
        for test in back:
            del self.running[test]
            self.last_attempt.pop(test, None)
        self.queue[:0] = back
        return back

    def release(self, worker: str) -> list[str]:
        released = sorted(t for t, run in self.running.items() if run.holder == worker)
        for test in released:
            self.running[test].deadline = 0
        self.reservations.pop(worker, None)
        return released


# --- Redis's state ---------------------------------------------------------------------------


@dataclass
class State:
    """Everything one build holds in Redis, read in one transaction."""

    now: int  # ms, Redis's clock
    ready: bool
    total: int
    tests: list[str]
    queue: list[str]
    running: dict[str, float]  # test -> deadline
    leases: dict[str, int]
    holders: dict[str, str]
    results: dict[str, int]
    attempts: dict[int, dict[str, Any]]
    dispositions: dict[int, str]
    last_attempt: dict[str, str]
    failed: int
    requeues: dict[str, int]
    requeued: int
    takeovers: dict[str, int]
    lease_counter: int
    reservations: dict[str, list[str]]
    ttls: dict[str, int]  # key -> PTTL (-2: no such key, -1: no TTL)

    def entry(self, test: str) -> tuple[int | None, str | None, float | None]:
        """A running test's lease, holder and deadline (all None when it is not running)."""
        return self.leases.get(test), self.holders.get(test), self.running.get(test)

    def live(self, test: str) -> bool:
        return test in self.running and self.running[test] > self.now


#: What `read_state` reads whole: hashes, then counters.
_HASHES = (
    "leases",
    "results",
    "attempts",
    "dispositions",
    "last-attempt",
    "requeues",
    "takeovers",
    "reservations",
)
_COUNTERS = ("total", "failed", "requeued", "lease-counter")


def read_state(client: redis.Redis, keys: BuildKeys) -> State:
    k = keys.key
    pipe = client.pipeline(transaction=True)
    pipe.time()
    pipe.exists(k("ready"))
    pipe.lrange(k("tests"), 0, -1)
    pipe.lrange(k("queue"), 0, -1)
    pipe.zrange(k("running"), 0, -1, withscores=True)
    for read, names in ((pipe.hgetall, _HASHES), (pipe.get, _COUNTERS), (pipe.pttl, QUEUE_KEYS)):
        for name in names:
            read(k(name))
    (seconds, micros), ready, tests, queue, running, *rest = pipe.execute()
    h: dict[str, dict[str, str]] = dict(zip(_HASHES, rest, strict=False))
    n = {name: int(v or 0) for name, v in zip(_COUNTERS, rest[len(_HASHES) :], strict=False)}
    ttls = rest[len(_HASHES) + len(_COUNTERS) :]
    # A lease's entry is "<id> <holder>"; a final attempt has no disposition (its test's
    # result names it): the model's dispositions are the stored ones and those.
    entries = {t: entry.split(" ", 1) for t, entry in h["leases"].items()}
    results = {t: int(lease) for t, lease in h["results"].items()}
    stored = {int(lease): d for lease, d in h["dispositions"].items()}
    assert "final" not in stored.values() and not stored.keys() & set(results.values())
    return State(
        now=int(seconds) * 1000 + int(micros) // 1000,
        ready=bool(ready),
        total=n["total"],
        tests=tests,
        queue=queue,
        running=dict(running),
        leases={t: int(lease) for t, (lease, _) in entries.items()},
        holders={t: holder for t, (_, holder) in entries.items()},
        results=results,
        attempts={int(lease): json.loads(text) for lease, text in h["attempts"].items()},
        dispositions=stored | dict.fromkeys(results.values(), "final"),
        last_attempt=h["last-attempt"],
        failed=n["failed"],
        requeues={t: int(count) for t, count in h["requeues"].items()},
        requeued=n["requeued"],
        takeovers={t: int(count) for t, count in h["takeovers"].items()},
        lease_counter=n["lease-counter"],
        reservations={w: json.loads(text) for w, text in h["reservations"].items()},
        ttls=dict(zip(QUEUE_KEYS, ttls, strict=True)),
    )
