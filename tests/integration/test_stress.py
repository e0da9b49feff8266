"""The one randomized stress test on top of the deterministic lease scenarios (STYLE.md §5).

Eight workers, each a thread with its own Redis client and its own `QueueWorker`, drain
2,000 tests through `QueueWorker.run` (acknowledge or requeue, and the next reserve, in one
round trip). A chaos thread rewrites a random running test's deadline to 0 every few
milliseconds, so another worker takes the test over while its first holder is still running
it, and that holder's acknowledge (or requeue) comes in stale. Some tests always fail, some
fail only the first time they run; failures are requeued under the caps.

Randomness comes from one fixed seed; thread scheduling still varies from run to run, which
is the point. Whatever the interleaving, the build must end exhausted with every test
finalized exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import (
    AttemptRecord,
    BuildRecord,
    Lease,
    Outcome,
    QueueSettings,
    QueueWorker,
    Supervisor,
    Verdict,
)
from ciqueue_gha.redis_server import PrivateRedis
from tests.support.drain import drain_queue

SEED = 20261128
TESTS = 2000
WORKERS = 8
BROKEN = 60  # tests that fail every time they run
FLAKY = 90  # tests that fail the first time they run, then pass
SETTINGS = QueueSettings(max_requeues=1, requeue_tolerance=0.05)
#: The generous scale sanity: the whole drain takes a few seconds; past this it is broken.
REPORT_TIMEOUT = 30.0
#: Longest a test "runs"; long enough for the chaos to catch tests in flight.
MAX_TEST_SECONDS = 0.003
#: Pause of the chaos thread between two forced expiries, seconds.
CHAOS_PAUSE = (0.0005, 0.003)


@dataclass
class Ledger:
    """What the workers executed, as seen from Python (the record is what Redis saw)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: Counter[str] = field(default_factory=Counter)
    leases: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def note(self, worker: str, lease: Lease) -> int:
        """Record an execution of `lease.unit` by `worker`; returns its execution number."""
        with self.lock:
            self.runs[lease.unit] += 1
            self.leases[worker].append(lease.id)
            return self.runs[lease.unit]

    def all_leases(self) -> list[int]:
        return [lease for leases in self.leases.values() for lease in leases]


@dataclass
class Suite:
    tests: list[str]
    broken: set[str]
    flaky: set[str]

    def outcome(self, test: str, execution: int) -> str:
        failing = test in self.broken or (test in self.flaky and execution == 1)
        return "failed" if failing else "passed"


def make_suite(rng: random.Random) -> Suite:
    tests = [f"tests/test_module_{i // 100:02d}.py::test_case_{i:04d}" for i in range(TESTS)]
    picked = rng.sample(tests, BROKEN + FLAKY)
    return Suite(tests, set(picked[:BROKEN]), set(picked[BROKEN:]))


class Chaos(threading.Thread):
    """Expires a random running lease every few milliseconds until stopped."""

    def __init__(self, client: redis.Redis, keys: BuildKeys, rng: random.Random) -> None:
        super().__init__(name="chaos", daemon=True)
        self.client, self.running, self.rng = client, keys.key("running"), rng
        self.expired = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(*CHAOS_PAUSE)):
            tests = sorted(str(test) for test in self.client.zrange(self.running, 0, -1))
            if tests:
                # XX: a test finalized in the meantime is not put back into running.
                test = self.rng.choice(tests)
                self.expired += int(
                    self.client.zadd(self.running, {test: 0}, xx=True, ch=True) or 0
                )


def worker_loop(
    url: str, keys: BuildKeys, worker_id: str, suite: Suite, ledger: Ledger, seed: int
) -> int:
    """One worker: populate, then `run` until the queue has nothing left; returns executions."""
    rng = random.Random(seed)

    def execute(lease: Lease) -> AttemptRecord:
        execution = ledger.note(worker_id, lease)
        time.sleep(rng.uniform(0, MAX_TEST_SECONDS))
        return AttemptRecord(unit=lease.unit, outcome=suite.outcome(lease.unit, execution))

    with closing(connect(url)) as client:
        # Waits are short here: the lease timeout is long, only the chaos expires leases.
        worker = QueueWorker(client, keys, worker_id, SETTINGS, sleep=lambda s: time.sleep(0.005))
        worker.populate(suite.tests)
        return drain_queue(worker, execute)


@dataclass
class Drain:
    outcome: Outcome
    executed: list[int]
    chaos_expired: int
    ledger: Ledger
    suite: Suite
    record: BuildRecord
    dispositions: dict[str, str]
    requeued: int
    leftovers: dict[str, int]
    seconds: float


def leftovers(client: redis.Redis, keys: BuildKeys) -> dict[str, int]:
    """Sizes of the keys that hold queued or running tests: all zero once exhausted."""
    return {
        "queue": client.llen(keys.key("queue")),
        "running": client.zcard(keys.key("running")),
        "leases": client.hlen(keys.key("leases")),
        "last-attempt": client.hlen(keys.key("last-attempt")),
    }


def dispositions(client: redis.Redis, keys: BuildKeys) -> dict[str, str]:
    """Every attempt's disposition by lease: those stored, and "final" for the attempts the
    results name (a final attempt has no disposition stored: never both)."""
    stored: dict[str, str] = client.hgetall(keys.key("dispositions"))  # type: ignore[assignment]
    final: list[str] = client.hvals(keys.key("results"))  # type: ignore[assignment]
    assert not stored.keys() & set(final) and "final" not in stored.values()
    return stored | dict.fromkeys(final, "final")


@pytest.fixture(scope="module")
def drain(redis_server: PrivateRedis) -> Iterator[Drain]:
    """Run the whole stressed build once; the tests below check what it left."""
    redis_url = redis_server.url
    rng = random.Random(SEED)
    suite, ledger = make_suite(rng), Ledger()
    keys = BuildKeys(f"stress-{SEED}")
    with ExitStack() as stack:
        client = stack.enter_context(closing(connect(redis_url)))
        chaos = Chaos(stack.enter_context(closing(connect(redis_url))), keys, rng)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=WORKERS))
        started = time.monotonic()
        futures = [
            pool.submit(worker_loop, redis_url, keys, f"w{n}", suite, ledger, SEED + n)
            for n in range(WORKERS)
        ]
        chaos.start()
        try:
            supervisor = Supervisor(client, keys, poll_interval=0.02, report_timeout=REPORT_TIMEOUT)
            outcome = supervisor.wait()
        finally:
            chaos.stop.set()
            chaos.join()
        executed = [future.result(timeout=REPORT_TIMEOUT) for future in futures]
        seconds = time.monotonic() - started
        yield Drain(
            outcome=outcome,
            executed=executed,
            chaos_expired=chaos.expired,
            ledger=ledger,
            suite=suite,
            record=BuildRecord.load(client, keys),
            dispositions=dispositions(client, keys),
            requeued=int(client.get(keys.key("requeued")) or 0),
            leftovers=leftovers(client, keys),
            seconds=seconds,
        )


def test_the_stressed_build_is_exhausted_within_the_report_timeout(drain: Drain) -> None:
    assert drain.outcome.verdict is Verdict.EXHAUSTED, (
        f"after {drain.seconds:.1f} s: {drain.outcome.status}"
    )
    assert drain.outcome.status.finalized == TESTS
    assert drain.leftovers == dict.fromkeys(drain.leftovers, 0)
    assert all(drain.executed), f"every worker ran tests: {drain.executed}"


def test_the_chaos_made_takeovers_and_stale_attempts(drain: Drain) -> None:
    stale = Counter(drain.dispositions.values())["stale"]
    takeovers = sum(drain.record.takeovers.values())
    assert drain.chaos_expired > 0
    assert takeovers > 0, f"{drain.chaos_expired} forced expiries, no takeover"
    assert stale > 0, f"{drain.chaos_expired} forced expiries, {takeovers} takeovers, no stale"


def test_every_test_is_finalized_exactly_once(drain: Drain) -> None:
    assert sorted(drain.record.results) == sorted(drain.suite.tests)
    assert Counter(drain.dispositions.values())["final"] == TESTS
    for test, attempts in drain.record.attempts.items():
        finals = [a.record.lease for a in attempts if a.disposition == "final"]
        assert finals == [drain.record.results[test].lease], f"{test}: {attempts}"


def test_every_execution_is_one_attempt_under_a_lease_of_its_own(drain: Drain) -> None:
    executed = drain.ledger.all_leases()
    recorded = [a.record.lease for attempts in drain.record.attempts.values() for a in attempts]
    assert len(executed) == len(set(executed)) == sum(drain.executed)
    assert sorted(recorded) == sorted(executed)
    assert sorted(int(lease) for lease in drain.dispositions) == sorted(executed)


def test_each_worker_sees_its_lease_ids_grow(drain: Drain) -> None:
    for worker, leases in drain.ledger.leases.items():
        assert leases == sorted(set(leases)), f"{worker}: {leases}"


def test_requeues_stay_under_both_caps(drain: Drain) -> None:
    requeued = Counter(
        test
        for test, attempts in drain.record.attempts.items()
        for a in attempts
        if a.disposition == "requeued"
    )
    total, cap = sum(requeued.values()), SETTINGS.build_requeue_cap(TESTS)
    assert 0 < total == drain.requeued <= cap, (
        f"{total} requeues, counter {drain.requeued}, cap {cap}"
    )
    twice = sorted(test for test, count in requeued.items() if count > SETTINGS.max_requeues)
    assert not twice, f"requeued more than {SETTINGS.max_requeues} time(s): {twice}"
    assert set(requeued) <= drain.suite.broken | drain.suite.flaky


def test_final_outcomes_follow_the_suite(drain: Drain) -> None:
    results = drain.record.results
    failed = {test for test, result in results.items() if result.failed}
    assert drain.suite.broken <= failed
    # A flaky test may end failed (finalized from its failing first run); a good one never.
    assert failed <= drain.suite.broken | drain.suite.flaky
    assert drain.outcome.status.failed == len(failed)
