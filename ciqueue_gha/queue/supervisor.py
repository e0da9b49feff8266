"""The supervisor: waits until every test of the build is accounted for.

It returns when the queue is exhausted (populated, nothing queued, nothing running, and
as many tests finalized as populated), when the report timeout passes, or when no live
worker has been seen for the inactive-workers timeout. It never calls a build done while
a lease is alive.

Every look also checks that the state is whole (DESIGN.md §2, state integrity): the
structural keys present, tests listed = total = queued + running + finalized, a lease for
every running test. Anything else is `QueueStateLost`, at once: a key evicted or expired
mid-build must not turn into a smaller, greener build or a wait for a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import redis

from .. import defaults
from ..errors import QueueNeverPopulated, QueueStateLost
from ..protocol.keys import BuildKeys
from ..protocol.scripts import Scripts
from .record import STRUCTURAL_KEYS


@dataclass(frozen=True)
class StateCounts:
    """What must agree in a populated build, read in one transaction of plain reads (a
    script in a transaction is refused when Redis is out of memory; reads never are)."""

    ready: bool
    total: int
    queued: int
    running: int
    finalized: int
    listed: int  # length of the tests list
    leases: int  # entries of the leases hash: one per running test
    attempts: int  # entries of the attempts hash: at least one per finalized test
    present: tuple[str, ...]  # those of STRUCTURAL_KEYS that exist

    def damage(self) -> str | None:
        """Why the state is not whole, or None. Not populated yet is whole when nothing of a
        populated queue is there either (populate writes every structural key at once)."""
        if not self.ready:
            there = ", ".join(self.present)
            return f"its ready marker is gone, its {there} remain" if there else None
        gone = [name for name in STRUCTURAL_KEYS if name not in self.present]
        if gone:
            return f"its {', '.join(gone)} key is gone"
        if self.listed != self.total:
            return f"its tests list holds {self.listed} of {self.total} tests"
        accounted = self.queued + self.running + self.finalized
        if accounted != self.total:
            return (
                f"{self.total - accounted} of its {self.total} tests are neither queued, "
                "running nor finalized"
            )
        if self.leases != self.running:
            return f"{self.running} tests are running but {self.leases} leases are held"
        if self.attempts < self.finalized:
            return f"{self.finalized} tests are finalized but {self.attempts} attempts recorded"
        return None


@dataclass(frozen=True)
class QueueStatus:
    ready: bool
    total: int
    queued: int
    running: int
    finalized: int
    failed: int
    alive_leases: int  # running tests whose deadline has not passed
    since_seen_ms: int  # since any worker reserved or heartbeat; -1: none seen
    now_ms: int
    stopped: bool = False  # a worker hit --max-failures: nothing more will be handed out
    interrupted: bool = False  # a worker's collection errors stopped the build (as pytest's)
    damage: str | None = None  # why the state is not whole (StateCounts.damage), if it is not

    @property
    def exhausted(self) -> bool:
        return (
            self.ready and self.queued == 0 and self.running == 0 and self.finalized == self.total
        )


class Verdict(Enum):
    EXHAUSTED = "exhausted"
    REPORT_TIMEOUT = "report timeout"
    INACTIVE_WORKERS = "no live worker"
    STOPPED = "stopped by --max-failures"
    TRIPPED = "every live worker's circuit breaker tripped (--max-consecutive-failures)"
    INTERRUPTED = "interrupted: errors during collection"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    status: QueueStatus


class Supervisor:
    """Watches one build attempt. `clock` and `sleep` are injected for tests; `on_status`
    sees every look from the queue's population to the end of the wait."""

    def __init__(
        self,
        client: redis.Redis,
        keys: BuildKeys,
        *,
        report_timeout: float = defaults.REPORT_TIMEOUT,
        inactive_workers_timeout: float = defaults.INACTIVE_WORKERS_TIMEOUT,
        queue_init_timeout: float = defaults.QUEUE_INIT_TIMEOUT,
        poll_interval: float = defaults.SUPERVISOR_POLL_INTERVAL,
        workers_gone: Callable[[], bool] | None = None,
        on_status: Callable[[QueueStatus], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.keys = keys
        self.scripts = Scripts(client)
        self.report_timeout = report_timeout
        self.inactive_workers_timeout = inactive_workers_timeout
        self.queue_init_timeout = queue_init_timeout
        self.poll_interval = poll_interval
        # Where the supervisor knows every worker process (the one-machine `run`), it need
        # not wait out a timeout once they have all exited.
        self._workers_gone = workers_gone or (lambda: False)
        # Shown each look while the build runs (the progress display, the live check run).
        self._on_status = on_status or (lambda status: None)
        self._clock = clock
        self._sleep = sleep
        self._key_vector = keys.queue_keys()
        self._client = client

    def status(self) -> QueueStatus:
        """What the queue holds now, and whether it is whole."""
        reply = self.scripts.call("status", self._key_vector, [])
        ready, total, queued, running, finalized, failed, alive, since, now = map(int, reply)
        stopped, interrupted, counts = self._state_counts()
        return QueueStatus(
            bool(ready),
            total,
            queued,
            running,
            finalized,
            failed,
            alive,
            since,
            now,
            stopped=stopped,
            interrupted=interrupted,
            damage=counts.damage(),
        )

    def _state_counts(self) -> tuple[bool, bool, StateCounts]:
        """The stopped and interrupted flags, and the counts that must agree, at one moment
        (an empty, not-populated look when Redis refuses transactions, out of memory)."""
        key = self.keys.key
        pipe = self._client.pipeline(transaction=True)
        for name in ("stopped", "interrupted", "ready"):
            pipe.exists(key(name))
        pipe.get(key("total"))
        pipe.llen(key("queue"))
        pipe.zcard(key("running"))
        pipe.hlen(key("results"))
        pipe.llen(key("tests"))
        pipe.hlen(key("leases"))
        pipe.hlen(key("attempts"))
        for name in STRUCTURAL_KEYS:
            pipe.exists(key(name))
        try:
            stopped, interrupted, ready, total, *counts = pipe.execute()
        except redis.ResponseError as exc:
            if "maxmemory" not in str(exc):  # OOM: "... when used memory > 'maxmemory'"
                raise
            # Out of memory, Redis refuses every command inside MULTI. It evicts nothing then
            # (noeviction) or has little left (evicting): the status script's look stands.
            return self._flags_only()
        queued, running, finalized, listed, leases, attempts = map(int, counts[:6])
        there = tuple(
            name for name, found in zip(STRUCTURAL_KEYS, counts[6:], strict=True) if found
        )
        state = StateCounts(
            bool(ready),
            int(total or 0),
            queued,
            running,
            finalized,
            listed,
            leases,
            attempts,
            there,
        )
        return bool(stopped), bool(interrupted), state

    def _flags_only(self) -> tuple[bool, bool, StateCounts]:
        stopped, interrupted = self._client.mget(
            self.keys.key("stopped"), self.keys.key("interrupted")
        )
        return bool(stopped), bool(interrupted), StateCounts(False, 0, 0, 0, 0, 0, 0, 0, ())

    def checked_status(self) -> QueueStatus:
        """`status`, or `QueueStateLost` when the state it shows is not whole."""
        status = self.status()
        why = status.damage
        if why is not None:
            raise QueueStateLost(
                f"build {self.keys.build_id} attempt {self.keys.attempt}: {why} "
                "(evicted, expired or flushed): queue state lost"
            )
        return status

    def wait_until_populated(self) -> QueueStatus:
        deadline = self._clock() + self.queue_init_timeout
        while True:
            gone = self._workers_gone()  # asked first: what a worker wrote before it exited counts
            status = self.checked_status()
            if status.ready or status.interrupted:
                return status
            if self._clock() >= deadline or gone:
                raise QueueNeverPopulated(
                    f"no worker populated the queue of build {self.keys.build_id} "
                    f"within {self.queue_init_timeout:g} s"
                )
            self._sleep(self.poll_interval)

    @staticmethod
    def _idle_for(status: QueueStatus, waited: float) -> float:
        """Seconds since the last sign of a live worker, on Redis's clock where it can."""
        if status.alive_leases > 0:
            return 0.0
        if status.since_seen_ms >= 0:
            return status.since_seen_ms / 1000
        return waited  # populated, but no worker ever reserved

    def wait(self) -> Outcome:
        """Wait for the build to be exhausted or for a timeout; raises `QueueStateLost`."""
        status = self.wait_until_populated()
        if not status.ready:  # interrupted: nothing was, or will be, queued
            return Outcome(Verdict.INTERRUPTED, status)
        start = self._clock()
        while True:
            self._on_status(status)
            if status.exhausted:
                return Outcome(Verdict.EXHAUSTED, status)
            if status.stopped and status.alive_leases == 0:
                return Outcome(Verdict.STOPPED, status)
            now = self._clock()
            if now - start >= self.report_timeout:
                return Outcome(Verdict.REPORT_TIMEOUT, status)
            idle = self._idle_for(status, now - start)
            if idle >= self.inactive_workers_timeout or (idle > 0 and self._workers_gone()):
                return Outcome(Verdict.INACTIVE_WORKERS, status)
            # A poll costs Redis the same whatever the build's size: past the first seconds,
            # poll at 1 % of the time waited (the end is seen that much later, at most 0.5 s).
            self._sleep(min(max(self.poll_interval, (now - start) / 100), 0.5))
            status = self.checked_status()
            if not status.ready:
                raise QueueStateLost(
                    f"the queue of build {self.keys.build_id} attempt {self.keys.attempt} "
                    "vanished from Redis (restarted empty, flushed or evicted): queue state lost"
                )
