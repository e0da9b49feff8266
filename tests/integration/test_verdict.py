"""The verdict an attempt leaves for its retries (queue/verdict.py), and the retry plan that
reads it (queue/retry.py), against a real redis-server: what it holds, how long it lives,
what it costs, and what a retry makes of an earlier attempt that is whole, gone or damaged."""

from __future__ import annotations

import random
import string

import pytest
import redis

from ciqueue_gha import defaults
from ciqueue_gha.errors import QueueStateLost
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import AttemptRecord, BuildRecord, CaseRecord
from ciqueue_gha.queue.retry import load_history, plan_retry
from ciqueue_gha.queue.settings import QueueSettings
from ciqueue_gha.queue.verdict import AttemptVerdict
from ciqueue_gha.queue.worker import Lease, QueueWorker

#: The figure the README states: 20,000 tests, 1 % of them failed.
SUITE, FAILED_EVERY = 20_000, 100

#: Bytes Redis may spend on that verdict (MEMORY USAGE of its key). Measured: 7,288 with these
#: random ids, 1,656 with ids that repeat their module and class as real ones do.
VERDICT_BYTES_LIMIT = 10 * 1024


def word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 10)))


def nodeid(n: int) -> str:
    """A test id about as long as real ones, made of random words: they compress far less
    than real ids (which repeat their module and class), so the figure errs on the high side."""
    rng = random.Random(n)
    return f"tests/{word(rng)}/test_{word(rng)}.py::Test{word(rng)}::test_{word(rng)}[{n}]"


def attempt_record(test: str, outcome: str) -> AttemptRecord:
    return AttemptRecord(test, outcome, cases=[CaseRecord(test, outcome)])


def suite_record(size: int, failing: set[str]) -> BuildRecord:
    tests = [nodeid(n) for n in range(size)]
    results = {t: attempt_record(t, "failed" if t in failing else "passed") for t in tests}
    return BuildRecord(True, tests, results, {}, {}, total=size, basis=0)


def test_the_verdict_of_20000_tests_with_1_percent_failed_costs_a_few_kilobytes(
    client: redis.Redis, keys: BuildKeys
) -> None:
    failing = {nodeid(n) for n in range(0, SUITE, FAILED_EVERY)}
    verdict = AttemptVerdict.of(1, 1, [suite_record(SUITE, failing)])
    assert verdict.units == SUITE
    assert verdict.kept == {"passed": SUITE - len(failing)}
    assert set(verdict.rerun) == failing and len(failing) == SUITE // FAILED_EVERY

    verdict.save(client, keys.build_id)
    stored = keys.key("verdict")
    cost = client.memory_usage(stored)
    raw = sum(len(test) + 3 for test in failing)
    print(f"verdict of {SUITE} tests, {len(failing)} failed: {cost} bytes in Redis ({raw} raw)")
    assert cost is not None and cost < VERDICT_BYTES_LIMIT
    assert AttemptVerdict.load(client, keys) == verdict


def test_the_verdict_outlives_the_build_keys(client: redis.Redis, keys: BuildKeys) -> None:
    AttemptVerdict(1, 0, 3, {"passed": 3}).save(client, keys.build_id)
    ttl = client.ttl(keys.key("verdict"))
    assert defaults.KEY_TTL < ttl <= defaults.VERDICT_TTL == 30 * 24 * 3600


def test_an_unreadable_verdict_is_as_good_as_gone(client: redis.Redis, keys: BuildKeys) -> None:
    client.set(keys.key("verdict"), "not a verdict")
    assert AttemptVerdict.load(client, keys) is None


def test_a_verdict_on_top_of_a_carried_one_keeps_the_whole_suite() -> None:
    """Attempt 1 (records expired) failed two of ten units; attempt 2 ran those two, one
    passed: the verdict of attempt 2 still counts ten units, one to run again."""
    carried = AttemptVerdict(1, 1, 10, {"passed": 7, "skipped": 1}, ["u3", "u8"])
    second = BuildRecord(
        True,
        ["u3", "u8"],
        {"u3": attempt_record("u3", "passed"), "u8": attempt_record("u8", "failed")},
        {},
        {},
        total=2,
        basis=1,
    )
    verdict = AttemptVerdict.of(2, 1, [second], carried)
    assert verdict == AttemptVerdict(2, 1, 10, {"passed": 8, "skipped": 1}, ["u8"])


# --- the retry plan ---------------------------------------------------------------------------


def run_attempt(client: redis.Redis, keys: BuildKeys, tests: list[str], failing: set[str]) -> None:
    """Populate `tests` as a retry would (basis from the plan) and run them all."""
    worker = QueueWorker(client, keys, "w", QueueSettings())
    plan = plan_retry(client, keys)
    queued = [t for t in tests if plan.units is None or t in plan.units]
    worker.populate(queued, allow_empty=plan.units is not None, basis=plan.basis)
    while isinstance(lease := worker.reserve(), Lease):
        outcome = "failed" if lease.unit in failing else "passed"
        worker.acknowledge(lease, attempt_record(lease.unit, outcome), reserve_next=False)


TESTS = ["a", "b", "c", "d"]


def test_a_retry_prefers_the_verdict_then_a_whole_state(
    client: redis.Redis, keys: BuildKeys
) -> None:
    first, second = keys, BuildKeys(keys.build_id, 2)
    run_attempt(client, first, TESTS, failing={"b"})
    plan = plan_retry(client, second)
    assert (plan.units, plan.basis, plan.notice) == ({"b"}, 1, None)  # from the state

    AttemptVerdict(1, 1, 4, {"passed": 2}, ["b", "c"]).save(client, keys.build_id)
    assert plan_retry(client, second).units == {"b", "c"}  # the verdict, when there is one


def test_a_retry_whose_earlier_attempt_is_damaged_runs_the_whole_suite_and_says_why(
    client: redis.Redis, keys: BuildKeys
) -> None:
    run_attempt(client, keys, TESTS, failing={"b"})
    client.delete(keys.key("tests"))  # "attempt 2 queues nothing": a failed build turns green
    plan = plan_retry(client, BuildKeys(keys.build_id, 2))
    assert plan.units is None and plan.basis == 0
    assert plan.notice is not None
    assert "attempt 1: its tests list holds 0 of 4 tests" in plan.notice
    assert plan.notice.endswith("attempt 2 queues the whole suite")


def test_a_retry_skips_attempts_that_queued_nothing(client: redis.Redis, keys: BuildKeys) -> None:
    """Attempt 2 re-ran the summary alone (nothing queued): attempt 3 builds on attempt 1."""
    run_attempt(client, keys, TESTS, failing={"c"})
    plan = plan_retry(client, BuildKeys(keys.build_id, 3))
    assert (plan.units, plan.basis) == ({"c"}, 1)


def test_nothing_left_of_any_earlier_attempt_runs_the_whole_suite(
    client: redis.Redis, keys: BuildKeys
) -> None:
    plan = plan_retry(client, BuildKeys(keys.build_id, 2))
    assert plan.units is None and plan.basis == 0
    assert plan.notice == (
        "no state or verdict of an attempt before 2 is left in Redis (expired, evicted, or "
        "none queued): attempt 2 queues the whole suite"
    )


def test_the_history_of_a_chain_of_retries(client: redis.Redis, keys: BuildKeys) -> None:
    """Attempt 3 stands on 2, which stands on 1: the summary of 3 merges all three; with 1's
    records gone it stands on 1's verdict; with that gone too, the state is lost."""
    attempts = [BuildKeys(keys.build_id, n) for n in (1, 2, 3)]
    run_attempt(client, attempts[0], TESTS, failing={"a", "b"})
    run_attempt(client, attempts[1], TESTS, failing={"a"})
    run_attempt(client, attempts[2], TESTS, failing=set())
    history = load_history(client, attempts[2])
    assert [len(record.units) for record in history.records] == [4, 2, 1]
    assert history.carried is None

    AttemptVerdict.of(1, 1, history.records[:1]).save(client, keys.build_id)
    client.delete(attempts[0].key("ready"))
    history = load_history(client, attempts[2])
    assert [len(record.units) for record in history.records] == [2, 1]
    assert history.carried is not None and history.carried.units == 4

    client.delete(attempts[0].key("verdict"))
    with pytest.raises(QueueStateLost, match="attempt 1: its ready marker is gone") as lost:
        load_history(client, attempts[2])
    assert "\n" not in str(lost.value)
