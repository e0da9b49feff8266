"""A build's state is whole or it is lost (DESIGN.md §2), checked by every script.

A build half-way (tests finalized, running and queued) loses one structural key, or part of
one: from then on every script refuses it as queue state lost, writes nothing, and populate
never fills it again. A build never populated is not lost: nothing of it exists yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from ciqueue_gha.errors import QueueStateLost
from ciqueue_gha.protocol.keys import QUEUE_KEYS, BuildKeys
from ciqueue_gha.protocol.scripts import SCRIPT_NAMES
from ciqueue_gha.queue import AttemptRecord, Lease, QueueWorker, Supervisor, breaker
from ciqueue_gha.queue.settings import QueueSettings
from tests.support.drain import drain_queue

TESTS = [f"t{n}" for n in range(6)]

#: Every key that holds the build's tests and leases, and all exist in a build half-way.
STRUCTURAL_KEYS = [
    "leader",
    "ready",
    "total",
    "digest",
    "tests",
    "queue",
    "running",
    "leases",
    "results",
    "attempts",
    "dispositions",
    "lease-counter",
]


def record(outcome: str = "passed") -> AttemptRecord:
    return AttemptRecord(unit="", outcome=outcome)


def half_way(client: redis.Redis, keys: BuildKeys) -> tuple[QueueWorker, list[Lease]]:
    """Two tests finalized (one failed), one failure requeued (a disposition: a final attempt
    has none), two running (one each for w1, w2), two queued."""
    requeuing = QueueSettings(max_requeues=1, requeue_tolerance=1.0)
    w1, w2 = QueueWorker(client, keys, "w1", requeuing), QueueWorker(client, keys, "w2")
    assert w1.populate(TESTS).leader
    for outcome, settle in (
        ("passed", w1.acknowledge),
        ("failed", w1.requeue),
        ("failed", w1.acknowledge),
    ):
        lease = w1.reserve()
        assert isinstance(lease, Lease)
        settle(lease, record(outcome), reserve_next=False)
    running = [w1.reserve(), w2.reserve()]
    assert all(isinstance(lease, Lease) for lease in running)
    return w1, running  # type: ignore[return-value]


def snapshot(client: redis.Redis, keys: BuildKeys) -> dict[str, Any]:
    """Every key of the build as DUMP sees it (TTLs aside)."""
    return {name: client.dump(keys.key(name)) for name in QUEUE_KEYS}


def every_call(worker: QueueWorker, leases: list[Lease]) -> dict[str, Callable[[], Any]]:
    """One call of each script, as a worker (or the supervisor) of the build makes it."""
    held = leases[0]
    fresh = QueueWorker(worker.client, worker.keys, "w3")
    return {
        "populate": lambda: fresh.populate(TESTS),
        "reserve": worker.reserve,
        "acknowledge": lambda: worker.acknowledge(held, record()),
        "requeue": lambda: worker.requeue(held, record("failed")),  # acknowledge, requeuing
        "window": lambda: worker.reserve_window(8),
        "heartbeat": lambda: worker.heartbeat(held),
        "release": worker.release,
        "give_back": lambda: worker.give_back([held]),
        "status": Supervisor(worker.client, worker.keys).status,
        "trip": lambda: breaker.trip(worker, [(held, record("failed"))]),
    }


def assert_every_call_refused(client: redis.Redis, keys: BuildKeys, calls: dict[str, Any]) -> None:
    assert set(SCRIPT_NAMES) <= set(calls)  # a new script must be added here
    before = snapshot(client, keys)
    for name, call in calls.items():
        with pytest.raises(QueueStateLost, match="queue state lost"):
            call()
        assert snapshot(client, keys) == before, f"{name} wrote to a lost build"


@pytest.mark.parametrize("lost", STRUCTURAL_KEYS)
def test_losing_any_structural_key_refuses_every_call(
    client: redis.Redis, keys: BuildKeys, lost: str
) -> None:
    worker, leases = half_way(client, keys)
    assert all(client.exists(keys.key(name)) for name in STRUCTURAL_KEYS)
    client.delete(keys.key(lost))
    assert_every_call_refused(client, keys, every_call(worker, leases))


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda c, k: c.hdel(k.key("results"), "t0"), "1 finalized tests, of 6"),
        (lambda c, k: c.lpop(k.key("tests")), "the tests list holds 5 tests, the total says 6"),
        (lambda c, k: c.rpush(k.key("queue"), "t9"), "finalized tests, of 6"),
        (lambda c, k: c.zrem(k.key("running"), "t3"), "1 running"),
        (lambda c, k: c.hdel(k.key("leases"), "t3"), "2 running tests, 1 leases"),
        (lambda c, k: c.hdel(k.key("attempts"), "1"), "2 attempts, 1 dispositions, 2 results"),
        (lambda c, k: c.hdel(k.key("dispositions"), "2"), "3 attempts, 0 dispositions"),
        (lambda c, k: c.set(k.key("lease-counter"), 3), "lease counter 3 below"),
        (lambda c, k: c.set(k.key("total"), 7), "the total says 7"),
    ],
    ids=[
        "a result",
        "a listed test",
        "a queued test too many",
        "a running test",
        "a lease",
        "an attempt",
        "a disposition",
        "lease ids",
        "the total",
    ],
)
def test_part_of_a_key_lost_is_state_lost_too(
    client: redis.Redis,
    keys: BuildKeys,
    damage: Callable[[redis.Redis, BuildKeys], Any],
    named: str,
) -> None:
    worker, leases = half_way(client, keys)
    damage(client, keys)
    with pytest.raises(QueueStateLost, match=named.replace("+", r"\+")):
        worker.reserve()
    assert_every_call_refused(client, keys, every_call(worker, leases))


@pytest.mark.parametrize(
    "kept",
    [["tests"], ["results", "attempts", "dispositions", "lease-counter"], ["queue"], ["leader"]],
)
def test_populate_refuses_a_damaged_build_and_pushes_nothing(
    client: redis.Redis, keys: BuildKeys, kept: list[str]
) -> None:
    """What an expired or evicted build leaves behind is never populated over: the leader
    would push the tests again behind what is left, and the build would run twice, or a
    follower would follow a queue that is not there."""
    half_way(client, keys)
    client.delete(*(keys.key(name) for name in STRUCTURAL_KEYS if name not in kept))
    before = snapshot(client, keys)
    for populating in ("w1", "w9"):  # the leader, and a worker new to the build
        with pytest.raises(QueueStateLost, match="queue state lost"):
            QueueWorker(client, keys, populating).populate(TESTS)
    assert snapshot(client, keys) == before


def test_a_build_never_populated_is_not_lost(client: redis.Redis, keys: BuildKeys) -> None:
    """Before populate nothing of the build exists: the supervisor waits, a worker that stops
    before populating (a collection error) releases nothing, and populate fills it."""
    status = Supervisor(client, keys).status()
    assert not status.ready and status.total == 0
    assert QueueWorker(client, keys, "w1").release() == []
    assert QueueWorker(client, keys, "w1").populate(TESTS).leader


def test_a_build_emptied_of_every_key_refuses_its_workers(
    client: redis.Redis, keys: BuildKeys
) -> None:
    """Redis restarted empty or flushed: a worker already in the build is refused (it must not
    take the build for one not populated yet)."""
    worker, leases = half_way(client, keys)
    client.delete(*keys.queue_keys())
    for call in (worker.reserve, lambda: worker.heartbeat(leases[0])):
        with pytest.raises(QueueStateLost, match="gone from Redis"):
            call()
    with pytest.raises(QueueStateLost):
        worker.acknowledge(leases[0], record())


def test_a_whole_build_passes_every_check_to_the_end(client: redis.Redis, keys: BuildKeys) -> None:
    """The checks never fire on a healthy build: requeues, a stale attempt and a takeover
    included (the model and stress tests drive many more)."""
    w1, w2 = QueueWorker(client, keys, "w1"), QueueWorker(client, keys, "w2")
    w1.populate(TESTS)
    first = w1.reserve()
    assert isinstance(first, Lease)
    client.zadd(keys.key("running"), {first.unit: 0}, xx=True)  # w1's lease runs out
    taken = w2.reserve()
    assert taken == Lease(first.unit, 2)
    assert w1.acknowledge(first, record("failed"), reserve_next=False)[0] == "stale"
    assert w2.acknowledge(taken, record(), reserve_next=False)[0] == "final"
    executed = drain_queue(w1, lambda lease: record()) + drain_queue(w2, lambda lease: record())
    assert executed == len(TESTS) - 1
    status = Supervisor(client, keys).status()
    assert status.exhausted and status.finalized == len(TESTS)
