"""The lease window: which leases a worker holds besides the unit it runs, and when it
reserves, acknowledges and waits.

A worker holds a window of up to `window_size` leases, granted by one reserve call. pytest
tears fixtures down according to the *next* item, so the next held lease's first item is the
running unit's ``nextitem``. Finished units are not acknowledged one by one: their attempts
wait in the window until what is left of it covers a round trip and a quarter (at most half
of it, at least a quarter), then one call acknowledges them all and reserves the next units
(DESIGN.md §2, acknowledge); its reply is not waited for while the worker still holds units
to run, and is read when it is needed (by then it has long arrived). A failed unit under
--max-failures is acknowledged at once and the reply waited for: it says whether the build
stopped before anything more runs.

The window adapts: it covers `WINDOW_ROUND_TRIPS` measured round trips of work (at least
`WINDOW_FLOOR` seconds, so very short units share a call), from the worker's running mean
of its unit times (started from the median recorded duration, so that one slow first unit
does not keep the window small for long; a unit's time leaves out its wait for the next
lease), never below 1 nor above `MAX_WINDOW`. Before its first unit the window is as many
of the longest recorded durations as cover that work: the queue hands out the longest
units first, and a first window must not take several long ones (none recorded: one
lease). Where units take as long as the window's cover, the window is one: nothing waits
leased behind the running unit, and its successor is reserved as its teardown starts (one
round trip, against a unit many round trips long).
The reserve script grants at most a worker's share of what is queued or expired, and none
past its share of every unit not finalized counting those it holds and has not started (it
says how many), so no unit waits behind a busy worker while another is idle; a worker told
to wait while it holds units (`capped`) asks again once they have run. A unit that runs past
`OVERRUN` covers (its duration unknown, or wrong) has the units held behind it given back by
the heartbeat helper but the next (overrun.py), for idle workers: the window drops them as
it starts its next unit.
A worker dying holding a window: its helper records the running unit as an error and gives
the rest back at once (units run but not acknowledged yet run again elsewhere).

=====================  ============================================================
state                  what the window holds
=====================  ============================================================
``lease``              the running unit's lease (None: before `start`, after the end)
``held``               leases granted and not started, in the order they run
``done``               units run whose attempts are not sent yet (their leases are
                       heartbeat until acknowledged)
``in_flight``          the acknowledge (with the next reserve) sent, reply unread
``capped``             the last reserve found this worker holding its share
``end``                the queue said exhausted or stopped: nothing more to reserve
=====================  ============================================================

Invariants: a unit never runs twice in a row under two leases (a unit granted again
replaces its older lease where it is held, running or done); every attempt is acknowledged
under the latest lease its unit ran under; stop and release acknowledge what was run and
give every unstarted lease back at once. `start` and `finish` return the lease to run next;
None once there is nothing more for this worker.

Every finished unit is first the circuit breaker's to judge (breaker.py): settled as usual,
held out of the batch (its lease heartbeat with the window's, never handed to the helper as
finished), or the breaker trips and the worker stops; an open streak is settled before the
window waits for work, and at the end.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
import time
from collections import deque
from collections.abc import Mapping
from contextlib import nullcontext

import pytest

from .. import defaults
from ..queue.heartbeat_protocol import Heartbeat
from ..queue.record import AttemptRecord
from ..queue.worker import (
    Batch,
    Done,
    Grant,
    Lease,
    QueueWorker,
    Reservation,
    Wait,
    Window,
)
from .breaker import Breaker, Step, settle_now
from .late import LateNextItem
from .tally import WorkerTally

#: The most leases a worker holds at once (running, held and done).
MAX_WINDOW = 128

#: A window covers this many of the worker's round trips of work; the acknowledge that
#: refills it goes out once what is left covers `REFILL_ROUND_TRIPS` of them (at most half
#: the window, at least a quarter: on loopback a call settles three quarters of a window).
WINDOW_ROUND_TRIPS = 2
REFILL_ROUND_TRIPS = 1.25

#: A window covers at least this much work, seconds: units of a few milliseconds share one
#: call even on loopback, where a round trip is nearly free (Redis's time per call is not:
#: a call's fixed cost, the state check and the TTLs, is shared by the units it settles;
#: benchmarks/redis_cost). Small, because work held ahead is work another worker may wait
#: for: a unit that takes longer than the floor is a window of its own, and near the end of
#: the queue reserve.lua's fair share caps every window (benchmarks/balance: a first window
#: of 0.25 s sized by the suite's mean cost 1.2 to 1.4x the lower bound at 4 workers).
WINDOW_FLOOR = 0.1

#: A unit that runs this many times a window's cover overran: its helper gives back the
#: leases held behind it but the next (overrun.py), for idle workers.
OVERRUN = 4

#: Weight of the newest sample in the worker's moving averages (round trip, unit time).
SMOOTHING = 0.2

#: A unit run and its attempt, not acknowledged yet.
Ran = tuple[Lease, AttemptRecord]


def smoothed(average: float | None, sample: float) -> float:
    return sample if average is None else average + SMOOTHING * (sample - average)


class LeaseWindow:
    """The leases of one worker (see the module's docstring for its state)."""

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
        self.lease: Lease | None = None
        self.held: deque[Lease] = deque()
        self.done: list[Ran] = []
        self.in_flight: tuple[Batch, list[Ran]] | None = None
        self.end: Done | None = None
        self.waiting: Wait | None = None  # the last reserve found nothing free yet
        self.capped = False
        self.round_trip: float | None = None  # moving average, seconds
        self.unit_time: float | None = None  # moving average of this worker's units
        self._late: LateNextItem | None = None
        self._told = 0  # how many of `done` the heartbeat was told of
        # The window's leases change only by `_add` (counted) and by leaving it, which
        # shrinks it: the heartbeat is told them again only when this pair changes.
        self._added = 0
        self._shape: tuple[int, int] | None = None
        self._started = 0.0
        known = sorted((seconds for seconds in expected.values() if seconds > 0), reverse=True)
        self._longest_first = list(itertools.accumulate(known))  # the k longest's sums
        self._typical = statistics.median(known) if known else None
        limit = worker.settings.max_consecutive_failures
        self.breaker = Breaker(worker, limit, settle_now(worker, tally.count))

    def _cover(self) -> float:
        """Seconds of work a window covers."""
        return max(WINDOW_ROUND_TRIPS * (self.round_trip or 0.0), WINDOW_FLOOR)

    def window_size(self) -> int:
        """How many leases to hold (see the module's docstring)."""
        cover = self._cover()
        if self.unit_time is None:  # the fewest longest recorded units that cover it
            reach = bisect.bisect_left(self._longest_first, cover) + 1
            return max(1, min(MAX_WINDOW, reach, len(self._longest_first)))
        return max(1, min(MAX_WINDOW, math.ceil(cover / max(self.unit_time, 1e-6))))

    def _want(self) -> int:
        """Leases the window lacks: its size less the units held to run (the running one
        too). Units run and not acknowledged are not work ahead, and do not count."""
        return max(0, self.window_size() - len(self.held) - (self.lease is not None))

    def start(self) -> Lease | None:
        """The first lease to run (None: nothing for this worker)."""
        self._refill()
        return self._next()

    def next_item(
        self, units: Mapping[str, list[pytest.Item]]
    ) -> pytest.Item | LateNextItem | None:
        """What the running unit's teardown sees as the next item: the first item of the
        next held lease's unit, or a stand-in that asks `answer_teardown` when first needed."""
        self._late = None
        if self.held:
            items = units.get(self.held[0].unit)
            return items[0] if items else None
        if self.end is not None:
            return None
        self._late = LateNextItem(self.answer_teardown, units)
        return self._late

    def answer_teardown(self) -> Reservation:
        """The lease after the running one: read off the reply in flight, or reserved now."""
        self._read_in_flight()
        if not self.held and self.end is None:
            self._refill()
        if self.held:
            return self.held[0]
        return self.end or self.waiting or Done("exhausted")

    def finish(self, record: AttemptRecord, *, stopping: bool) -> Lease | None:
        """Keep the running unit's `record` to acknowledge; `stopping`: pytest was told to
        stop. Returns the lease to run next (None: no more)."""
        waited = 0.0
        if self._late is not None:
            self._late.resolve()
            self._late.raise_error()
            waited = self._late.waited
        lease = self.lease
        assert lease is not None
        # Its own time: the wait for the next lease (in its teardown) is the link's, not the
        # unit's; counted, a window of one on a slow link would find every unit a round trip
        # long and stay one.
        ran = time.perf_counter() - self._started - waited
        prior = self.unit_time if self.unit_time is not None else self._typical
        self.unit_time = smoothed(prior, max(ran, 0.0))
        self.lease = None
        stopping = stopping or self.end == Done("stopped")
        step = self.breaker.judge(lease, record, stopping=stopping, unrun=self._unrun)
        if step is Step.TRIP:  # its streak and the unrun leases went back (or are final)
            self.tally.final_failures += self.breaker.finalized
            self._stop(stopped=bool(self.breaker.finalized))
            return None
        if step is not Step.HOLD:
            self.done.append((lease, record))
        if stopping:
            self._stop()
            return None
        capped = self.worker.settings.max_failures is not None
        # A pass that settled a streak is waited for as a capped failure is.
        if step is Step.SETTLED or (record.failed and step is Step.SETTLE and capped):
            # Whether the build stopped, before anything more runs.
            self._read_in_flight()
            self._refill()
            if self.end == Done("stopped"):
                self._stop()
                return None
        self._keep_filled()
        return self._next()

    def _unrun(self) -> list[Lease]:
        """Every lease held and not started, those of the reply in flight too."""
        self._read_in_flight()
        return list(self.held)

    def _keep_filled(self) -> None:
        """Refill the window, without waiting, once what is left of it is low (reading first
        the reply in flight that refills it); acknowledge without a reserve when the window
        is full or the queue has nothing to give now, once a window's worth of attempts
        waits to be sent. With nothing held, `_next` refills."""
        size = self.window_size()
        refill_at = self._refill_at(size)

        def due() -> bool:
            low = len(self.held) <= refill_at and self.end is None
            low = low and self.waiting is None and not self.capped
            return low or len(self.done) >= size

        if self.in_flight is not None and (due() or self.in_flight[0].arrived()):
            self._read_in_flight()
        if due() and self.in_flight is None and self.held:
            self._send(reserve=0 if self.end else self._want())

    def _refill_at(self, size: int) -> int:
        """How few held units make the refill due: those that cover `REFILL_ROUND_TRIPS`
        round trips, at most half the window and at least a quarter of it."""
        if self.unit_time is None or self.round_trip is None:
            return size // 2
        cover = math.ceil(REFILL_ROUND_TRIPS * self.round_trip / max(self.unit_time, 1e-6))
        return min(size // 2, max(size // 4, cover))

    def _next(self) -> Lease | None:
        """Start the next held lease: reading the reply in flight, or reserving (waiting
        out waits) when none is held. None: nothing more; what was run is acknowledged."""
        pause = defaults.WAIT_POLL_FIRST
        while not self.held and self.end is None:
            if self.in_flight is not None:
                self._read_in_flight()
                continue
            if self.waiting is not None and not self.done and not self.breaker.before_waiting():
                pause = self.worker.wait_out(self.waiting, pause)
            self._refill()
        if not self.held:
            self._settle_all()
            return None
        with self.heartbeat.starting() if self.heartbeat else nullcontext():
            self._drop_given_back()
            if self.held:  # (always: the first held is never given back)
                self.lease = self.held.popleft()
                self._started = time.perf_counter()
                self._hold()
        return self.lease if self.lease is not None else self._next()

    def _drop_given_back(self) -> None:
        """Forget the leases the helper gave back while the last unit overran."""
        given = set(self.heartbeat.given_back()) if self.heartbeat else set()
        if given:
            self.held = deque(lease for lease in self.held if lease not in given)

    def _refill(self) -> None:
        """Acknowledge what was run and reserve what the window lacks, reading the reply
        now (a `Wait` is kept in `waiting`, for `_next` to wait out)."""
        self._read_in_flight()
        self._send(reserve=max(1, self._want()))
        self._read_in_flight(at_once=True)

    def _send(self, *, reserve: int) -> None:
        done, self.done, self._told = self.done, [], 0
        self.in_flight = (self.worker.settle(done, reserve, holding=len(self.held)), done)

    def _read_in_flight(self, *, at_once: bool = False) -> None:
        """Read the reply in flight, if any: tally its attempts, take its grant. `at_once`:
        asked for right after it was sent (its lease dates Redis's clock for this worker)."""
        if self.in_flight is None:
            return
        batch, done = self.in_flight
        self.in_flight = None
        arrived = batch.arrived()
        dispositions, grant = batch.result(at_once=at_once)
        elapsed = time.perf_counter() - batch.sent_at
        # A reply that had to be waited for took one round trip; one already there, at most.
        self.round_trip = (
            smoothed(self.round_trip, elapsed)
            if not arrived
            else (min(self.round_trip or elapsed, elapsed))
        )
        for (lease, record), disposition in zip(done, dispositions, strict=True):
            self.tally.count(disposition, failed=record.failed, unit=lease.unit)
        if grant is not None:
            self._take(grant)

    def _take(self, grant: Grant) -> None:
        self.capped = isinstance(grant, Wait) and bool(self.held)
        self.waiting = grant if isinstance(grant, Wait) and not self.capped else None
        if isinstance(grant, Done):
            self.end = grant
        if isinstance(grant, Window):
            for lease in grant.leases:
                self._add(lease)

    def _add(self, lease: Lease) -> None:
        """Hold `lease`; a unit this worker already holds under an older lease (it stalled
        past that lease and got the unit back) is not held twice: the new lease replaces
        the old one, running, done or held."""
        self._added += 1
        if self.lease is not None and self.lease.unit == lease.unit:
            self.lease = lease
            return
        for i, (old, record) in enumerate(self.done):
            if old.unit == lease.unit:
                self.done[i] = (lease, record)
                self._told = min(self._told, i)  # told again, under its new lease
                return
        for i, old in enumerate(self.held):
            if old.unit == lease.unit:
                self.held[i] = lease
                return
        self.held.append(lease)

    def _settle_all(self) -> None:
        """Acknowledge every attempt not sent yet (an open streak's too), and read every
        reply: at the end."""
        self.breaker.settle_streak()
        self._read_in_flight()
        if self.done:
            self._send(reserve=0)
            self._read_in_flight()

    def _stop(self, *, stopped: bool = True) -> None:
        """The build stopped (--max-failures), pytest was told to (-x, --maxfail), or the
        breaker tripped (`stopped` False: its streak went to others): what was run is
        acknowledged, what is held goes back at once, unrun."""
        self._settle_all()
        self.worker.release()
        self.tally.stopped = self.tally.stopped or stopped
        self.lease, self.held, self.end = None, deque(), Done("stopped")

    def _hold(self) -> None:
        if not self.heartbeat or self.lease is None:
            return
        # The attempts not acknowledged yet go to the helper once: should this unit hang or
        # end the worker, it acknowledges them, and they never run again elsewhere.
        told, self._told = self.done[self._told :], len(self.done)
        streak = self.breaker.leases
        shape = (self._added, 1 + len(self.held) + len(self.done) + len(streak))
        if shape == self._shape:  # the same leases: another of them started
            self.heartbeat.run(self.lease, finished=told)
            return
        self._shape = shape
        # A held failure is kept alive, but not told as finished: should the worker die, it
        # is released and runs elsewhere.
        others = [*self.held, *(lease for lease, _ in self.done), *streak]
        overrun = OVERRUN * self._cover()
        self.heartbeat.hold(
            self.lease, *others, finished=told, unstarted=len(self.held), overrun=overrun
        )
