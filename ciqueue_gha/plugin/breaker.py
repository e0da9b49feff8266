"""The circuit breaker of one worker (`--max-consecutive-failures N`): when does a failed unit
count against the worker rather than the test?

The rule:

- A failed unit opens (or extends) the worker's *streak*: it is not acknowledged, and its
  lease stays held (the heartbeat keeps it alive with the running one), so the build cannot
  look done while the streak is open.
- A passed unit closes the streak: the worker is healthy, so the held failures are real and
  are settled as any failure is (acknowledged, or requeued under --max-requeues).
- The Nth failure in a row trips the breaker: the streak goes back to the head of the queue
  for other workers (queue/breaker.py), charged to no requeue cap, and the worker stops
  taking work and releases what it still holds. The last live worker to trip has no one to
  give its streak to: its failures are final and the build stops (exit 1, as --max-failures).
- A unit another worker's streak gave back that fails here too joins the streak but does not
  count toward N: a healthy worker must not trip on the real failures a broken one gave
  back, and a broken one must not make them real. The next pass settles it (a real failure:
  it failed on a healthy worker too); a trip gives it back again.
- Out of work with a streak open (a reserve answers wait or done), the streak is settled as
  usual: handing it over would run every real failure at the end of the queue once more on
  each worker. So a broken runner that had not failed N units when the queue ran out does
  fail the build with those (fewer than N); it fails fast, so it rarely gets that far.
- pytest told to stop, or the build stopped (--max-failures): the streak is settled as usual.
- Under a failure cap (--max-failures, -x, --maxfail), a failure that would reach it, counting
  the build's final failures and this worker's held ones, is settled at once, with the streak:
  the user asked to stop there, and holding it would run units past the cap. So with -x the
  breaker never holds; with a cap above the streak, a broken runner's failures do not count.

The lease window (ahead.py) asks `judge` of every finished unit (a held one stays out of its
acknowledge batches, and out of what its heartbeat helper would acknowledge should the worker
die: a dead worker's held failures are released and run elsewhere), calls `before_waiting`
before it waits for work and `settle_streak` at its end, and heartbeats `leases` with its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from enum import Enum

from ..queue import breaker
from ..queue.record import AttemptRecord
from ..queue.worker import Lease, QueueWorker

#: Settles a held failure as any failure is settled (acknowledge, or requeue).
Settle = Callable[[Lease, AttemptRecord], object]


def settle_now(worker: QueueWorker, count: Callable[..., None]) -> Settle:
    """A `Settle` for a lease window: acknowledge (or requeue) one attempt now, its reply
    waited for, and `count` its disposition as the window counts its batches'."""

    def settle(lease: Lease, record: AttemptRecord) -> None:
        dispositions, _ = worker.settle([(lease, record)], 0).result(at_once=True)
        count(dispositions[0], failed=record.failed, unit=lease.unit)

    return settle


class Step(Enum):
    """What the worker does with a finished unit."""

    SETTLE = "settle"  # acknowledge (or requeue) it as usual
    SETTLED = "settled"  # it passed and closed a streak (now settled): as usual, but its
    # acknowledge is waited for, as a failure's is (the build may have stopped, --max-failures)
    HOLD = "hold"  # keep its lease, unacknowledged, and run the next unit
    TRIP = "trip"  # the streak is gone back (or final): stop taking work, release the rest


class Breaker:
    """The streak of one worker: the failed units it holds, oldest first, `counted` of them
    toward `limit` (at most `limit` - 1 between calls). `tripped` once it stopped; `finalized`:
    the units its trip made final failures here (the last live worker's)."""

    def __init__(self, worker: QueueWorker, limit: int, settle: Settle) -> None:
        self.worker = worker
        self.limit = limit
        self._settle = settle
        self.streak: list[tuple[Lease, AttemptRecord]] = []
        self.counted = 0
        self.tripped = False
        self.finalized: list[str] = []

    @property
    def leases(self) -> list[Lease]:
        """The held leases the heartbeat keeps alive."""
        return [lease for lease, _ in self.streak]

    def judge(
        self,
        lease: Lease,
        record: AttemptRecord,
        *,
        stopping: bool,
        unrun: Callable[[], Sequence[Lease]],
    ) -> Step:
        """What to do with the unit that ended under `lease` with `record`; `stopping`: the
        worker stops after it (pytest was told to, or the build stopped); `unrun`: asked for
        the leases it holds and has not run (given back unrun if the breaker trips)."""
        if self.limit == 0:
            return Step.SETTLE
        if not record.failed or stopping or self._reaches_cap():
            return Step.SETTLED if self.settle_streak() else Step.SETTLE
        self.streak.append((lease, record))
        self.counted += not breaker.given_back_by_another(self.worker, lease.unit)
        if self.counted < self.limit:
            return Step.HOLD
        self._trip(unrun())
        return Step.TRIP

    def before_waiting(self) -> bool:
        """Called when the worker has no lease to run and would wait for one: an open streak
        is settled first. True when it was (reserve again at once: a requeue may have given
        work, and the build may have stopped)."""
        return self.settle_streak() > 0

    def _reaches_cap(self) -> bool:
        """Whether one more final failure here, with the held ones, reaches --max-failures."""
        cap = self.worker.settings.max_failures
        if cap is None:
            return False
        if len(self.streak) + 1 >= cap:
            return True  # whatever the build's count (no call to Redis: -x, --maxfail 1)
        return breaker.failed_so_far(self.worker) + len(self.streak) + 1 >= cap

    def settle_streak(self) -> int:
        """Settle the held failures as any failure is; returns how many there were."""
        streak, self.streak, self.counted = self.streak, [], 0
        for lease, record in streak:
            self._settle(lease, record)
        return len(streak)

    def _trip(self, unrun: Sequence[Lease]) -> None:
        reply = breaker.trip(self.worker, self.streak, unrun)
        units = [lease.unit for lease, _ in self.streak]
        self.streak, self.counted, self.tripped = [], 0, True
        if reply == breaker.FINALIZED:
            self.finalized = units
        _say(self._stop_line(reply, len(units)))

    def _stop_line(self, reply: str, units: int) -> str:
        worker = self.worker.worker_id
        where = (
            "no other live worker: they are final failures, and the build stops"
            if reply == breaker.FINALIZED
            else "they go back to the queue for the other workers"
        )
        return (
            f"[{worker}] circuit breaker tripped: {units} units failed in a row on this worker "
            f"(--max-consecutive-failures {self.limit}); it stops taking work; {where}"
        )


def _say(line: str) -> None:
    print(f"ciqueue-gha: {line}", file=sys.stderr, flush=True)
