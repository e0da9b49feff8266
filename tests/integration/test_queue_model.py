"""The lease queue against a model: a Hypothesis state machine on a real Redis.

Three workers populate, reserve windows of leases (at most their share of what is left),
heartbeat one lease or a whole window in one call, acknowledge and requeue one attempt or a
batch, retry and release, crash and lose leases; the harness stands for time passing and
forces a lease to expire by rewriting its deadline in the running zset (nothing sleeps).
`Model` (queue_model.py) is a plain-Python reading of DESIGN.md §2: it predicts every reply
(which tests and leases are handed out is deterministic: expired leases first, by deadline
then by name as the zset orders them, then the queue's head), and after every step the whole
of Redis's state is compared with it and the five invariants are checked on Redis's state
alone.

A build may also lose one of its structural keys (evicted, expired, flushed): from then on
every call of every worker, and the supervisor's, is refused as queue state lost, changing
nothing; so no reply can call a test finalized or the queue exhausted.

Each example is a fresh build id on the session's redis-server, deleted when it ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ciqueue_gha.errors import QueueStateLost
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import (
    AttemptRecord,
    Lease,
    Population,
    QueueSettings,
    QueueWorker,
    Supervisor,
    Wait,
    Window,
)
from tests.integration.queue_model import (
    FAILURES,
    LEASE_TIMEOUT,
    Entry,
    Grant,
    Model,
    State,
    read_state,
)

WORKERS = ("w0", "w1", "w2")

#: Picks an element of a non-empty list (modulo its length); shrinks towards the first.
PICK = st.integers(min_value=0, max_value=255)

#: The keys that hold the build's tests and leases; losing any one of them loses the build.
#: Those that exist only once work is under way come first: Hypothesis draws the first often.
STRUCTURAL_KEYS = (
    "attempts",
    "results",
    "leases",
    "running",
    "dispositions",
    "lease-counter",
    "queue",
    "tests",
    "total",
    "digest",
    "ready",
    "leader",
)

#: What a worker (or the supervisor) may try once a key is lost.
CALLS_AFTER_LOSS = (
    "populate",
    "reserve",
    "reserve again",
    "reserve a window",
    "heartbeat",
    "acknowledge",
    "requeue",
    "release",
    "give back",
    "status",
)
OUTCOMES = st.sampled_from(["passed", "failed", "error", "skipped"])
#: Leases a reserve asks for.
WINDOW = st.integers(min_value=1, max_value=4)
#: Leases a worker says it holds besides, as a reserve asks (0: as a worker holding none).
HOLDING = st.sampled_from([0, 0, 1, 3])

_examples = itertools.count(1)


# --- the state machine -----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What the last step did, for the invariants that look at a step's before and after."""

    kind: str
    actor: str | None = None  # the worker that called; None: the harness (time passing)
    leases: tuple[Lease, ...] = ()  # the leases the call carried
    reserves: bool = False  # whether the call reserved (alone, or riding on a finish)
    touched: frozenset[str] = frozenset()  # tests whose deadline the harness rewrote


@dataclass(frozen=True)
class Finish:
    """A worker's last acknowledge (of a batch), to repeat as a client whose reply was lost."""

    entries: list[Entry]
    requeue: bool
    seq: int  # 0: it did not reserve next
    count: int  # leases its reserve asked for
    holding: int = 0  # leases it said it held besides


def attempt(outcome: str) -> AttemptRecord:
    return AttemptRecord(unit="", outcome=outcome)


def assert_reservation(real: Grant | None, predicted: Grant | None) -> None:
    if isinstance(predicted, Wait):
        # The wait is the time to the nearest live deadline, on Redis's clock.
        assert isinstance(real, Wait), f"expected a wait, got {real!r}"
        assert 0 < real.seconds <= LEASE_TIMEOUT
    else:
        assert real == predicted


class QueueMachine(RuleBasedStateMachine):
    """Workers against one build; the model predicts, Redis must agree after every step."""

    queue_settings: QueueSettings  # drawn by `populate`

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client
        self.keys = BuildKeys(f"model-{next(_examples)}")
        self.workers: dict[str, QueueWorker] = {}
        self.granted: dict[int, tuple[str, Lease]] = {}  # lease id -> the worker it went to
        self.abandoned: set[int] = set()  # leases of crashed workers: never used again
        self.last_finish: dict[str, Finish] = {}
        self.supervisor = Supervisor(client, self.keys)
        self.step = Step("populate")
        self.before = read_state(client, self.keys)
        self.model = Model([], 0, 0, None)
        self.lost: str | None = None  # the structural key the build lost, if it lost one
        self.steps = 0
        self.lose_after: int | None = None  # drawn by `populate`: None, the build loses nothing

    def teardown(self) -> None:
        self.client.delete(*self.keys.queue_keys())

    # --- helpers

    def _worker(self, name: str) -> QueueWorker:
        worker = QueueWorker(self.client, self.keys, name, self.queue_settings)
        self.workers[name] = worker
        self.model.seq[name] = 0
        return worker

    def _note(self, worker: str, grant: Grant | None) -> None:
        for lease in grant.leases if isinstance(grant, Window) else ():
            self.granted.setdefault(lease.id, (worker, lease))

    def _leases(self, *, current: bool) -> list[tuple[str, Lease]]:
        return [
            (worker, lease)
            for lease_id, (worker, lease) in sorted(self.granted.items())
            if lease_id not in self.abandoned and self.model.holds(lease) == current
        ]

    def _stale(self, pick: int, unsettled: bool) -> tuple[str, Lease]:
        """A stale lease; with `unsettled`, one never acknowledged if there is one (a late
        worker's first call rather than a retry)."""
        leases = self._leases(current=False)
        fresh = [(w, lease) for w, lease in leases if lease.id not in self.model.dispositions]
        pool = fresh if unsettled and fresh else leases
        return pool[pick % len(pool)]

    def intact(self) -> bool:
        return self.lost is None

    def has_current(self) -> bool:
        return self.intact() and bool(self._leases(current=True))

    def has_stale(self) -> bool:
        return self.intact() and bool(self._leases(current=False))

    def has_running(self) -> bool:
        return self.intact() and bool(self.model.running)

    def can_retry(self) -> bool:
        return self.intact() and any(self._retryable(w) for w in WORKERS)

    def _retryable(self, worker: str) -> bool:
        call = self.last_finish.get(worker)
        return call is not None and call.seq in (0, self.model.seq[worker])

    def _own(self, worker: str) -> list[Lease]:
        """The leases granted to `worker` that it may still use (current or stale)."""
        return [
            lease
            for lease_id, (w, lease) in sorted(self.granted.items())
            if w == worker and lease_id not in self.abandoned
        ]

    def _settle(self, worker: str, call: Finish, *, retry: bool = False) -> None:
        """Send `call` (a batch acknowledge, and a reserve when its seq is not 0) and check
        the reply against the model's."""
        predicted = self.model.settle(worker, call.entries, call.seq, call.count, call.holding)
        client = self.workers[worker]
        if retry and call.seq:
            client.reserve_seq = call.seq - 1  # so the call repeats its reserve number
        done = [(lease, attempt(outcome)) for lease, outcome, _ in call.entries]
        reserve = call.count if call.seq else 0
        batch = client.settle(done, reserve, requeue=call.requeue, holding=call.holding)
        dispositions, grant = batch.result()
        self.step = Step("acknowledge", worker, tuple(e[0] for e in call.entries), call.seq > 0)
        self.last_finish[worker] = call
        self._note(worker, grant)
        assert dispositions == predicted[0]
        assert_reservation(grant, predicted[1])
        assert client.reserve_seq == self.model.seq[worker]

    def _finish(self, script: str, worker: str, lease: Lease, outcome: str, next_: bool) -> None:
        """One attempt acknowledged (or requeued) through the one-lease API."""
        seq = self.model.next_seq(worker) if next_ else 0
        entries: list[Entry] = [(lease, outcome, script == "requeue")]
        predicted = self.model.settle(worker, entries, seq, 1)
        call = getattr(self.workers[worker], script)
        disposition, reservation = call(lease, attempt(outcome), reserve_next=next_)
        self.step = Step(script, worker, (lease,), reserves=next_)
        self.last_finish[worker] = Finish(entries, script == "requeue", seq, 1)
        grant = Window((reservation,)) if isinstance(reservation, Lease) else reservation
        self._note(worker, grant)
        assert [disposition] == predicted[0]
        assert_reservation(grant, predicted[1])
        assert self.workers[worker].reserve_seq == self.model.seq[worker]

    # --- rules

    @initialize(
        n=st.integers(min_value=1, max_value=8),
        order=st.permutations(range(8)),
        max_requeues=st.integers(min_value=0, max_value=2),
        tolerance=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
        max_failures=st.sampled_from([None, None, None, 1, 3]),
        lose_after=st.sampled_from([None, None, None, 5, 12]),
    )
    def populate(
        self,
        n: int,
        order: list[int],
        max_requeues: int,
        tolerance: float,
        max_failures: int | None,
        lose_after: int | None,
    ) -> None:
        # Most builds keep their state; the others lose a key some steps in, once work is done.
        self.lose_after = lose_after
        # Queue order differs from name order, so ties among expired deadlines (broken by name)
        # are not the queue's order by accident.
        tests = [f"tests/test_m{i % 3}.py::test_{i}[p{i}]" for i in order if i < n]
        self.queue_settings = QueueSettings(
            lease_timeout=LEASE_TIMEOUT,
            max_requeues=max_requeues,
            requeue_tolerance=tolerance,
            max_failures=max_failures,
        )
        self.model = Model(
            tests, max_requeues, self.queue_settings.build_requeue_cap(n), max_failures, list(tests)
        )
        leader, follower, stray = (self._worker(w) for w in WORKERS)
        assert leader.populate(tests) == Population(True, n, True)
        assert leader.populate(tests) == Population(True, n, True)  # a retry pushes nothing
        assert follower.populate(tests[::-1]) == Population(False, n, True)
        stray_set = [*tests, "tests/test_stray.py::test_only_here"]
        assert stray.populate(stray_set) == Population(False, n, False)
        self.step = Step("populate")

    @precondition(intact)
    @rule(worker=st.sampled_from(WORKERS), retry=st.booleans(), count=WINDOW, holding=HOLDING)
    def reserve(self, worker: str, retry: bool, count: int, holding: int) -> None:
        retry = retry and self.model.seq[worker] > 0  # a first call has nothing to repeat
        seq = self.model.seq[worker] if retry else self.model.next_seq(worker)
        predicted = self.model.reserve(worker, seq, count, holding)
        grant = self.workers[worker].reserve_window(count, retry=retry, holding=holding)
        self.step = Step("reserve", worker, reserves=True)
        self._note(worker, grant)
        assert_reservation(grant, predicted)
        assert self.workers[worker].reserve_seq == seq

    @precondition(has_current)
    @rule(pick=PICK)
    def heartbeat_current(self, pick: int) -> None:
        leases = self._leases(current=True)
        worker, lease = leases[pick % len(leases)]
        assert self.model.heartbeat(worker, [lease]) == [True]
        assert self.workers[worker].heartbeat(lease) is True
        self.step = Step("heartbeat", worker, (lease,))

    @precondition(has_stale)
    @rule(pick=PICK, unsettled=st.booleans())
    def heartbeat_stale(self, pick: int, unsettled: bool) -> None:
        worker, lease = self._stale(pick, unsettled)
        assert self.model.heartbeat(worker, [lease]) == [False]
        assert self.workers[worker].heartbeat(lease) is False
        self.step = Step("heartbeat", worker, (lease,))

    @precondition(intact)
    @rule(worker=st.sampled_from(WORKERS))
    def heartbeat_window(self, worker: str) -> None:
        """One call for every lease the worker was granted, current or stale."""
        leases = self._own(worker)
        predicted = self.model.heartbeat(worker, leases)
        assert self.workers[worker].heartbeat_all(leases) == predicted
        self.step = Step("heartbeat", worker, tuple(leases))

    @precondition(intact)
    @rule(
        worker=st.sampled_from(WORKERS),
        picks=st.lists(PICK, min_size=1, max_size=4),
        outcomes=st.lists(OUTCOMES, min_size=4, max_size=4),
        requeue=st.booleans(),
        count=st.integers(min_value=0, max_value=4),
        holding=HOLDING,
    )
    def acknowledge_window(
        self,
        worker: str,
        picks: list[int],
        outcomes: list[str],
        requeue: bool,
        count: int,
        holding: int,
    ) -> None:
        """A batch acknowledge of some of the worker's leases (distinct), and the reserve of
        the next window with it (count 0: none)."""
        own = self._own(worker)
        if not own:
            return
        leases = list(dict.fromkeys(own[pick % len(own)] for pick in picks))
        entries = [(lease, outcomes[n], requeue) for n, lease in enumerate(leases)]
        seq = self.model.next_seq(worker) if count else 0
        self._settle(worker, Finish(entries, requeue, seq, count, holding))

    @precondition(has_running)
    @rule(pick=PICK, deadline=st.integers(min_value=0, max_value=2))
    def expire(self, pick: int, deadline: int) -> None:
        """Time passes for one test: its holder stopped heartbeating (or is just slow)."""
        running = sorted(self.model.running)
        test = running[pick % len(running)]
        self.model.running[test].deadline = deadline
        self.client.zadd(self.keys.key("running"), {test: deadline}, xx=True)
        self.step = Step("expire", touched=frozenset({test}))

    @precondition(has_current)
    @rule(pick=PICK, outcome=OUTCOMES, next_=st.booleans())
    def acknowledge_current(self, pick: int, outcome: str, next_: bool) -> None:
        leases = self._leases(current=True)
        self._finish("acknowledge", *leases[pick % len(leases)], outcome, next_)

    @precondition(has_stale)
    @rule(pick=PICK, unsettled=st.booleans(), outcome=OUTCOMES, next_=st.booleans())
    def acknowledge_stale(self, pick: int, unsettled: bool, outcome: str, next_: bool) -> None:
        self._finish("acknowledge", *self._stale(pick, unsettled), outcome, next_)

    @precondition(has_current)
    @rule(pick=PICK, outcome=st.sampled_from(FAILURES), next_=st.booleans())
    def requeue_current(self, pick: int, outcome: str, next_: bool) -> None:
        leases = self._leases(current=True)
        self._finish("requeue", *leases[pick % len(leases)], outcome, next_)

    @precondition(has_stale)
    @rule(
        pick=PICK, unsettled=st.booleans(), outcome=st.sampled_from(FAILURES), next_=st.booleans()
    )
    def requeue_stale(self, pick: int, unsettled: bool, outcome: str, next_: bool) -> None:
        self._finish("requeue", *self._stale(pick, unsettled), outcome, next_)

    @precondition(can_retry)
    @rule(pick=PICK)
    def retry_finish(self, pick: int) -> None:
        """Repeat a worker's last acknowledge exactly, reserve number included."""
        candidates = [w for w in WORKERS if self._retryable(w)]
        worker = candidates[pick % len(candidates)]
        call = self.last_finish[worker]
        assert all(e[0].id in self.model.dispositions for e in call.entries)  # recorded once
        self._settle(worker, call, retry=True)

    @precondition(intact)
    @rule(worker=st.sampled_from(WORKERS), picks=st.lists(PICK, min_size=1, max_size=3))
    def give_back(self, worker: str, picks: list[int]) -> None:
        """The worker's helper gives back some of its leases (current or stale: a lease
        taken over meanwhile is left alone)."""
        own = self._own(worker)
        if not own:
            return
        leases = list(dict.fromkeys(own[pick % len(own)] for pick in picks))
        predicted = self.model.give_back(leases)
        assert self.workers[worker].give_back(leases) == predicted
        self.step = Step("give back", worker, tuple(leases))

    @precondition(intact)
    @rule(worker=st.sampled_from(WORKERS))
    def release(self, worker: str) -> None:
        predicted = self.model.release(worker)
        assert sorted(self.workers[worker].release()) == predicted
        self.step = Step("release", worker)

    @precondition(intact)
    @rule(worker=st.sampled_from(WORKERS))
    def crash(self, worker: str) -> None:
        """The worker dies: it never uses its leases again, they expire; it restarts afresh."""
        held = [t for t, run in self.model.running.items() if run.holder == worker]
        self.abandoned |= {lease_id for lease_id, (w, _) in self.granted.items() if w == worker}
        for test in held:
            self.model.running[test].deadline = 0
            self.client.zadd(self.keys.key("running"), {test: 0}, xx=True)
        self.last_finish.pop(worker, None)
        restarted = self._worker(worker)  # the same worker id, its reserve numbers from 1 again
        n = len(self.model.tests)
        assert restarted.populate(self.model.tests) == Population(worker == "w0", n, True)
        self.step = Step("crash", touched=frozenset(held))

    def may_lose(self) -> bool:
        return self.intact() and self.lose_after is not None and self.steps >= self.lose_after

    @precondition(may_lose)
    @rule(key=st.sampled_from(STRUCTURAL_KEYS))
    def lose_key(self, key: str) -> None:
        """Redis loses one structural key of the build: `key`, or the next one after it that
        holds something (an empty hash or list is no key at all in Redis)."""
        start = STRUCTURAL_KEYS.index(key)
        names = STRUCTURAL_KEYS[start:] + STRUCTURAL_KEYS[:start]
        self.lost = next(name for name in names if self.client.exists(self.keys.key(name)))
        self.client.delete(self.keys.key(self.lost))
        self.before = read_state(self.client, self.keys)
        self.step = Step("lose")

    @precondition(lambda self: self.lost is not None)
    @rule(call=st.sampled_from(CALLS_AFTER_LOSS), worker=st.sampled_from(WORKERS), pick=PICK)
    def call_after_loss(self, call: str, worker: str, pick: int) -> None:
        """Any call, by any worker or the supervisor, is refused: never a lease, a "final" or
        an "exhausted" from a build that lost part of its state."""
        client = self.workers[worker]
        leases = [lease for _, lease in self.granted.values()] or [Lease(self.model.tests[0], 1)]
        lease = leases[pick % len(leases)]
        calls: dict[str, Callable[[], object]] = {
            "populate": lambda: self._worker(worker).populate(self.model.tests),
            "reserve": client.reserve,
            "reserve again": lambda: client.reserve(retry=client.reserve_seq > 0),
            "reserve a window": lambda: client.reserve_window(3),
            "heartbeat": lambda: client.heartbeat(lease),
            "acknowledge": lambda: client.acknowledge(lease, attempt("passed")),
            "requeue": lambda: client.requeue(lease, attempt("failed")),
            "release": client.release,
            "give back": lambda: client.give_back([lease]),
            "status": self.supervisor.status,
        }
        with pytest.raises(QueueStateLost, match="queue state lost"):
            calls[call]()
        self.step = Step(f"{call} after loss", worker)

    # --- after every step

    @invariant()
    def redis_agrees_with_the_model_and_keeps_the_invariants(self) -> None:
        self.steps += 1
        before, after = self.before, read_state(self.client, self.keys)
        if self.lost is not None:
            # Refused calls change nothing (Redis's clock and the keys' TTLs aside).
            assert replace(after, now=0, ttls={}) == replace(before, now=0, ttls={})
            return
        self.check_model(after)
        self.check_tests_in_one_place(after)
        self.check_leases(before, after)
        self.check_only_holders_move_tests(before, after)
        self.check_exhausted(after)
        self.check_stale_calls_change_no_lease(before, after)
        self.check_every_key_has_a_ttl(after)
        self.before = after

    def check_model(self, real: State) -> None:
        m = self.model
        assert real.ready and real.total == len(m.tests) and real.tests == m.tests
        assert real.queue == m.queue
        assert real.running.keys() == m.running.keys()
        for test, run in m.running.items():
            assert (real.leases[test], real.holders[test]) == (run.lease, run.holder)
            if run.deadline is None:
                assert real.running[test] > real.now, f"{test}'s lease should be live"
            else:
                assert real.running[test] == run.deadline
        assert real.results == m.results
        recorded = {
            lease: (record["unit"], record["worker"], record["outcome"], record["lease"])
            for lease, record in real.attempts.items()
        }
        assert recorded == {lease: (*a, lease) for lease, a in m.attempts.items()}
        assert real.dispositions == m.dispositions
        assert real.last_attempt == {t: f"{lease}:{o}" for t, (lease, o) in m.last_attempt.items()}
        assert (real.failed, real.requeued, real.lease_counter) == (
            m.failed,
            m.requeued,
            m.lease_counter,
        )
        assert real.requeues == m.requeues
        assert real.takeovers == m.takeovers
        assert real.reservations == {
            w: [str(seq), *(part for u, lease in pairs for part in (u, str(lease)))]
            for w, (seq, pairs) in m.reservations.items()
        }

    def check_tests_in_one_place(self, real: State) -> None:
        """Invariant 1: a test is in exactly one of queued, running, finalized."""
        queued, running, finalized = set(real.queue), set(real.running), set(real.results)
        assert len(queued) == len(real.queue), "a test is queued twice"
        assert not queued & running and not queued & finalized and not running & finalized
        assert queued | running | finalized == set(real.tests)

    def check_leases(self, before: State, after: State) -> None:
        """Invariant 2: at most one live lease per test; lease ids only grow."""
        assert after.running.keys() == after.leases.keys() == after.holders.keys()
        assert len(set(after.leases.values())) == len(after.leases)
        assert after.lease_counter >= before.lease_counter
        assert all(lease <= after.lease_counter for lease in after.leases.values())
        for test, lease in after.leases.items():
            if before.leases.get(test) != lease:
                assert lease > before.lease_counter, f"{test} got an old lease id {lease}"

    def check_only_holders_move_tests(self, before: State, after: State) -> None:
        """Invariant 3: only the current lease holder moves a test out of running.

        The one exception DESIGN.md makes: a reserve that finds the lease expired finalizes
        the test from a completed (stale) attempt instead of running it again.
        """
        step = self.step
        for test in before.running.keys() - after.running.keys():
            by_holder = (
                step.kind in ("acknowledge", "requeue", "give back")
                and Lease(test, before.leases[test]) in step.leases
            )
            # The attempt it is finalized from was stale: recorded earlier, or by this very
            # call before it reserved.
            final = after.results.get(test)
            stale = final is not None and final != before.leases[test]
            recorded = before.dispositions.get(final or 0) == "stale" or (
                any(lease.id == final for lease in step.leases)
            )
            on_expiry = step.reserves and before.running[test] <= before.now and stale and recorded
            assert by_holder or on_expiry, f"{test} left running in {step}"

    def check_exhausted(self, real: State) -> None:
        """Invariant 4: exhausted <=> populated, nothing queued or running, all finalized."""
        status = self.supervisor.status()
        drained = (
            real.ready and not real.queue and not real.running and len(real.results) == real.total
        )
        assert status.exhausted == drained == self.model.exhausted
        m = self.model
        live = sum(run.deadline is None for run in m.running.values())
        assert (status.total, status.queued, status.running, status.finalized) == (
            len(m.tests),
            len(m.queue),
            len(m.running),
            len(m.results),
        )
        assert (status.failed, status.alive_leases) == (m.failed, live)

    def check_stale_calls_change_no_lease(self, before: State, after: State) -> None:
        """Invariant 5: nothing a stale worker does changes another worker's lease.

        A stale call that does not reserve changes no lease at all, not even its caller's
        current one; no call changes another worker's live lease (a reserve only takes queued
        tests and expired leases, and a retried one refreshes its caller's own lease).
        """
        step = self.step
        stale = [lease for lease in step.leases if before.leases.get(lease.unit) != lease.id]
        if step.leases and len(stale) == len(step.leases):  # a call of stale leases only
            for test in before.running:
                own = before.holders[test] == step.actor
                if not step.reserves or (before.live(test) and not own):
                    assert after.entry(test) == before.entry(test), f"{step} moved {test}"
        for test in before.running:
            if test in step.touched or (step.actor and before.holders[test] == step.actor):
                continue
            if step.actor is None or before.live(test):
                assert after.entry(test) == before.entry(test), f"{step} moved {test}"

    def check_every_key_has_a_ttl(self, real: State) -> None:
        assert all(ttl != -1 for ttl in real.ttls.values()), f"a key without a TTL: {real.ttls}"


def test_the_queue_behaves_as_its_model(client: redis.Redis) -> None:
    class OnTheSessionRedis(QueueMachine):
        def __init__(self) -> None:
            super().__init__(client)

    run_state_machine_as_test(
        OnTheSessionRedis,
        settings=settings(
            max_examples=500,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
