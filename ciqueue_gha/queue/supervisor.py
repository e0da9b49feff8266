"""The supervisor: waits until every test of the build is accounted for.

It returns when the queue is exhausted (populated, nothing queued, nothing running, and
as many tests finalized as populated), when the report timeout passes, or when no live
worker has been seen for the inactive-workers timeout. It never calls a build done while
a lease is alive.

Every look is one call of the status script, which checks that the state is whole as every
script does (DESIGN.md §2, state integrity): the structural keys present (the basis too),
tests listed = total = queued + running + finalized, a lease for every running test.
Anything else is `QueueStateLost`, at once: a key evicted or expired mid-build must not turn
into a smaller, greener build or a wait for a timeout.
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
from .pace import PollPace

#: A blocking wait for the end lasts at most this long, seconds: well within the client's
#: socket timeout (defaults.SOCKET_TIMEOUT). A shorter wait than `MIN_BLOCK` is not made.
MAX_BLOCK = 1.0
MIN_BLOCK = 0.001
#: The least time between two looks once the queue is populated, seconds.
LOOK_FLOOR = 0.25


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
        self._client = client
        self._ended = keys.key("ended")
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
        # The status script reads these beyond the vector (status.lua's header).
        self._key_vector = keys.status_keys()

    def status(self) -> QueueStatus:
        """What the queue holds now; `QueueStateLost` when the state is not whole (the
        status script checks it as every script does, the basis marker too)."""
        reply = self.scripts.call("status", self._key_vector, [])
        ready, total, queued, running, finalized, failed, alive, since, now, stopped, broke = map(
            int, reply
        )
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
            stopped=bool(stopped),
            interrupted=bool(broke),
        )

    def wait_until_populated(self) -> QueueStatus:
        deadline = self._clock() + self.queue_init_timeout
        while True:
            gone = self._workers_gone()  # asked first: what a worker wrote before it exited counts
            status = self.status()
            if status.ready or status.interrupted:
                return status
            if self._clock() >= deadline or gone:
                raise QueueNeverPopulated(
                    f"no worker populated the queue of build {self.keys.build_id} "
                    f"within {self.queue_init_timeout:g} s"
                )
            # Workers collect meanwhile (seconds, for a large suite): nothing to see sooner.
            self._sleep(max(self.poll_interval, LOOK_FLOOR))

    def _until_ended(self, seconds: float) -> None:
        """Wait `seconds`, or until the last test is finalized: the script that finalizes it
        pushes to the build's `ended` list, which this blocks on (left as it is, for any
        other summary), so the end is seen at once however seldom the supervisor looks.
        In tests with a clock of their own, their sleep."""
        if self._sleep is not time.sleep:
            self._sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > MIN_BLOCK:
                # Within the socket timeout; 0 would block for ever.
                if self._client.brpoplpush(self._ended, self._ended, min(left, MAX_BLOCK)):
                    return
        except redis.RedisError:  # the next look says what is wrong, in one line
            time.sleep(max(0.0, deadline - time.monotonic()))

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
        # The end wakes the wait at once (`_until_ended`): the looks are for the rest (a
        # stop, the timeouts, the progress shown), and need not come every poll interval.
        pace = PollPace(max(self.poll_interval, LOOK_FLOOR))
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
            self._until_ended(pace.pause(status, now))
            status = self.status()
            if not status.ready:
                raise QueueStateLost(
                    f"the queue of build {self.keys.build_id} attempt {self.keys.attempt} "
                    "vanished from Redis (restarted empty, flushed or evicted): queue state lost"
                )
