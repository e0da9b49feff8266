"""The reserve-ahead policy: which lease a worker holds behind the unit it runs, and when it
reserves, acknowledges and waits.

pytest tears fixtures down according to the *next* item, so a worker knows the unit after the
one it runs before that one's teardown: it holds that unit's lease behind the running one, and
each acknowledge carries the reserve of the unit after that: one round trip a unit
(DESIGN.md §2, acknowledge). A passed unit's acknowledge is not waited for: the unit behind
starts at once, and the reply is read when its teardown asks which item is next, by when it
has long arrived. A failed unit's acknowledge is waited for: its reply may say the build
stopped (--max-failures).

A unit held behind waits for the one running, though another worker may be idle: so a unit
expected to run long (recorded durations, `LATE_RESERVE_ROUND_TRIPS`) runs with nothing held
behind it, and its successor is reserved as its teardown starts: one more round trip for it.

Every finished unit is first the circuit breaker's to judge (breaker.py: settle it as usual,
hold it unacknowledged while the worker runs on, or trip), and every reservation this policy
would wait on passes its `before_waiting`; the leases it holds are heartbeat with the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from ..queue.record import AttemptRecord
from ..queue.worker import Done, Finishing, Heartbeat, Lease, QueueWorker, Reservation
from .breaker import Breaker, Step

#: A unit expected to take at least this many of the worker's round trips to Redis runs
#: with no lease held behind it (its successor is reserved as its teardown starts): the
#: extra round trip costs it at most 1 %, and no unit waits, leased, behind a long one.
LATE_RESERVE_ROUND_TRIPS = 100

#: Weight of the newest round trip in the worker's moving average of them.
ROUND_TRIP_SMOOTHING = 0.2


@dataclass
class WorkerTally:
    """What one worker did: units executed, and its attempts by disposition."""

    executed: int = 0
    final_failures: list[str] = field(default_factory=list)
    requeued: int = 0
    stale: int = 0
    stopped: bool = False  # max-failures reached, or pytest's own -x / --maxfail

    def count(self, disposition: str, *, failed: bool, unit: str = "") -> None:
        self.executed += 1
        if disposition == "requeued":
            self.requeued += 1
        elif disposition == "stale":
            self.stale += 1
        elif failed:
            self.final_failures.append(unit)


class ReserveAhead:
    """The leases of one worker: `lease`, its running unit's, and `behind`, what it knows of
    the unit to run after that one.

    =====================  ==========================================  ====================
    state                  ``behind``                                  heartbeat holds
    =====================  ==========================================  ====================
    nothing held           any (``lease`` is None: before `start`,     no live lease
                           after the end)
    running, lease behind  a reserve's reply: a lease, a wait, or the  ``lease``, and the
                           end                                         lease behind (*)
    running long           None: reserved when pytest asks             ``lease``
    reply in flight        the `Finishing` of the unit before: its     ``lease``
                           acknowledge with the reserve behind, unread
    =====================  ==========================================  ====================

    (*) A lease behind that came as the running unit's teardown started is heartbeat from
    when its unit runs: a teardown is short of a lease timeout, and the worker sends no more.

    ==============================  ========================================================
    event                           what happens
    ==============================  ========================================================
    `start`                         reserve, waiting out waits: that lease runs, with a
                                    lease reserved behind it unless it runs long
    pytest asks for the next item   running long: reserve now. Reply in flight: read it; if
    (`answer_teardown`)             it is the running unit's own under a new lease (this
                                    worker stalled past its lease and got the unit back),
                                    that lease replaces ``lease``, and the unit behind is
                                    reserved now
    `finish`: unit passed, a lease  acknowledge sent, not waited for: the lease behind runs,
    behind that does not run long   the reply in flight
    `finish`: unit failed, or the   acknowledge (or requeue) waited for, with the reserve of
    lease behind runs long, or      the unit after unless the lease behind runs long (under
    none is behind                  a failure cap a failure always reserves: the reply says
                                    whether the build stopped). The lease behind runs; none:
                                    the reply's lease (after waits); the reply is the lease
                                    behind's own unit: it runs under that new lease
    `finish`: the build stopped,    acknowledge, release what is held: nothing held
    or pytest was told to stop
    ==============================  ========================================================

    Invariants: at most two leases held, ``lease`` and the one behind; a unit never runs
    twice in a row under two leases (its newer lease replaces the older); every attempt is
    acknowledged under the latest lease its unit ran under. `start` and `finish` return the
    lease to run next; None once there is nothing more for this worker.
    """

    def __init__(
        self,
        worker: QueueWorker,
        heartbeat: Heartbeat | None,
        expected: Mapping[str, float],
        tally: WorkerTally,
    ) -> None:
        self.worker = worker
        self.heartbeat = heartbeat
        self.expected = expected  # seconds each unit is expected to take
        self.tally = tally
        self.lease: Lease | None = None  # the running unit's
        self.behind: Reservation | Finishing | None = None
        self.round_trip: float | None = None  # moving average, seconds
        self._late: LateNextItem | None = None
        settle = partial(self._finish, reserve_next=False)
        self.breaker = Breaker(worker, worker.settings.max_consecutive_failures, settle)

    def start(self) -> Lease | None:
        """The first lease to run (None: nothing for this worker)."""
        return self._begin(self._wait_for_lease(self._reserve()))

    def next_item(
        self, units: Mapping[str, list[pytest.Item]]
    ) -> pytest.Item | LateNextItem | None:
        """What the running unit's teardown sees as the next item: the first item of the
        unit held behind, or a stand-in that asks `answer_teardown` when first needed."""
        self._late = None
        if self.behind is None or isinstance(self.behind, Finishing):
            self._late = LateNextItem(self.answer_teardown, units)
            return self._late
        if isinstance(self.behind, Lease) and self.behind.unit in units:
            return units[self.behind.unit][0]
        return None

    def answer_teardown(self) -> Reservation:
        """The reply behind the running unit, reserved or read now (see the state table)."""
        if self.behind is None:
            self.behind = self._reserve()
        elif isinstance(self.behind, Finishing):
            disposition, reply = self.behind.result()
            self.tally.count(disposition, failed=False)
            assert reply is not None  # asked for with the acknowledge
            self.behind = reply
            if isinstance(reply, Lease) and self.lease and reply.unit == self.lease.unit:
                self.lease, self.behind = reply, self._reserve()
                self._hold()
        return self.behind

    def finish(self, record: AttemptRecord, *, stopping: bool) -> Lease | None:
        """Acknowledge (or requeue) the running unit's `record`; `stopping`: pytest was told
        to stop. Returns the lease to run next (None: no more)."""
        if self._late is not None:
            self._late.resolve()
            self._late.raise_error()
        lease, behind = self.lease, self.behind
        assert lease is not None and not isinstance(behind, Finishing) and behind is not None
        lease_behind = behind if isinstance(behind, Lease) else None
        step = self.breaker.judge(lease, record, stopping=stopping, behind=behind)
        if step in (Step.HOLD, Step.TRIP):
            return self._after_breaker(step, lease_behind)
        if behind == Done("stopped"):
            self._finish(lease, record, reserve_next=False)
            self._stop()
            return None
        failed = record.failed or step is Step.SETTLED  # waited for: the build may have stopped
        capped_failure = failed and self.worker.settings.max_failures is not None
        reserve_next = (
            lease_behind is None or not self._runs_long(lease_behind.unit) or capped_failure
        )
        if lease_behind is not None and reserve_next and not failed and not stopping:
            return self._run_behind(lease_behind, self.worker.acknowledge_later(lease, record))
        reply = self._finish(lease, record, reserve_next=reserve_next)
        if stopping or reply == Done("stopped"):
            self._stop()
            return None
        if lease_behind is None:
            assert reply is not None  # asked for with the acknowledge
            return self._begin(self._wait_for_lease(reply))
        if isinstance(reply, Lease) and reply.unit == lease_behind.unit:
            # This worker stalled past the lease it held behind, and got the unit back under
            # a new lease: run it once, under that one (running the item twice in a row
            # would break pytest's setup state).
            return self._begin(reply)
        # No reply: the lease behind runs long, and its teardown reserves.
        return self._run_behind(lease_behind, reply)

    def _begin(self, lease: Lease | None) -> Lease | None:
        """Run `lease` next, with the unit behind it reserved now unless it runs long."""
        self.lease = lease
        if lease is None:
            self.behind = Done("exhausted")
            return None
        self.behind = None if self._runs_long(lease.unit) else self._reserve()
        self._hold()
        return lease

    def _run_behind(self, lease: Lease, behind: Reservation | Finishing | None) -> Lease:
        """Run `lease`, the one held behind, next; `behind`: what is known of the unit after."""
        self.lease, self.behind = lease, behind
        self._hold()
        return lease

    def _after_breaker(self, step: Step, lease_behind: Lease | None) -> Lease | None:
        """The lease to run after a unit the breaker holds (HOLD), or None: it tripped."""
        if step is Step.TRIP:
            self.tally.final_failures += self.breaker.finalized
            self._stop(failed=bool(self.breaker.finalized))
            return None
        if lease_behind is not None:
            return self._run_behind(lease_behind, None)
        return self._begin(self._wait_for_lease(self._reserve()))

    def _wait_for_lease(self, reservation: Reservation) -> Lease | None:
        return self.worker.wait_for_lease(self.breaker.before_waiting(reservation))

    def _stop(self, *, failed: bool = True) -> None:
        """The build stopped (--max-failures), pytest was told to (-x, --maxfail), or the
        breaker tripped (`failed` False: its units went to others): what is held goes back
        at once, unrun."""
        self.worker.release()
        self.tally.stopped = failed
        self.lease, self.behind = None, Done("stopped")

    def _hold(self) -> None:
        if self.heartbeat and self.lease is not None:
            behind = [self.behind] if isinstance(self.behind, Lease) else []
            self.heartbeat.hold(self.lease, *behind, *self.breaker.leases)

    def _finish(
        self, lease: Lease, record: AttemptRecord, *, reserve_next: bool
    ) -> Reservation | None:
        requeue = record.failed and self.worker.may_requeue
        finish = self.worker.requeue if requeue else self.worker.acknowledge
        started = time.perf_counter()
        disposition, reply = finish(lease, record, reserve_next=reserve_next)
        self._count_round_trip(time.perf_counter() - started)
        self.tally.count(disposition, failed=record.failed, unit=lease.unit)
        return reply

    def _reserve(self) -> Reservation:
        started = time.perf_counter()
        reply = self.worker.reserve()
        self._count_round_trip(time.perf_counter() - started)
        return reply

    def _count_round_trip(self, seconds: float) -> None:
        if self.round_trip is None:
            self.round_trip = seconds
        else:
            self.round_trip += ROUND_TRIP_SMOOTHING * (seconds - self.round_trip)

    def _runs_long(self, unit: str) -> bool:
        """Whether `unit` is expected to take LATE_RESERVE_ROUND_TRIPS round trips or more;
        never when no duration was recorded."""
        seconds = self.expected.get(unit)
        if seconds is None or self.round_trip is None:
            return False
        return seconds >= LATE_RESERVE_ROUND_TRIPS * self.round_trip


class LateNextItem:
    """pytest's `nextitem` for a unit whose successor is not known yet (it runs long, or the
    reply that names it is in flight): asks `answer` when pytest first asks about it, which
    its teardown does (``listchain``) to know which fixtures the next item still needs. No
    next unit, or an error asking (kept for `raise_error`, so it is not reported as the
    test's teardown error): nothing is needed. Any other attribute is the next item's."""

    def __init__(
        self, answer: Callable[[], Reservation], units: Mapping[str, list[pytest.Item]]
    ) -> None:
        self._answer = answer
        self._units = units
        self.reply: Reservation | None = None
        self._item: pytest.Item | None = None
        self._error: Exception | None = None

    def resolve(self) -> pytest.Item | None:
        if self.reply is None and self._error is None:
            try:
                self.reply = self._answer()
            except Exception as exc:
                self._error = exc
            if isinstance(self.reply, Lease) and self.reply.unit in self._units:
                self._item = self._units[self.reply.unit][0]
        return self._item

    def listchain(self) -> list[Any]:  # pytest's nodes, session first
        item = self.resolve()
        return item.listchain() if item is not None else []

    def __getattr__(self, name: str) -> Any:
        item = self.resolve()
        if item is None:
            raise AttributeError(name)
        return getattr(item, name)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error
