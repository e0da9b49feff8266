"""The circuit breaker (plugin/breaker.py, queue/breaker.py, trip.lua) against a real queue,
driven as the plugin drives the lease window: each rule of the breaker's docstring, with what
Redis holds after it."""

from __future__ import annotations

from typing import Any

import redis

from ciqueue_gha.plugin.ahead import LeaseWindow
from ciqueue_gha.plugin.tally import WorkerTally
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, BuildRecord, Lease, QueueWorker
from ciqueue_gha.queue.breaker import stopped_workers, tripped_stop
from ciqueue_gha.queue.record import CaseRecord
from ciqueue_gha.queue.settings import QueueSettings
from tests.integration.test_lease_window import Holds

UNITS = [f"u{n}" for n in range(6)]


class FixedWindow(LeaseWindow):
    """A window of `size` leases whatever the units' times (two: the running unit's and one
    behind it), so each test knows what the worker holds."""

    size = 2

    def window_size(self) -> int:
        return self.size


class Told(Holds):
    """A heartbeat that also keeps the leases of the attempts it was told are finished."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[Lease] = []

    def hold(self, running: Lease, *others: Lease, finished: Any = (), **told: Any) -> None:
        super().hold(running, *others)
        self.finished += [lease for lease, _ in finished]

    def run(self, running: Lease, finished: Any = ()) -> None:
        super().run(running)
        self.finished += [lease for lease, _ in finished]


def worker(
    client: redis.Redis, keys: BuildKeys, name: str, limit: int = 2, size: int = 2, **settings: int
) -> tuple[FixedWindow, Told]:
    queue = QueueWorker(
        client, keys, name, QueueSettings(max_consecutive_failures=limit, **settings)
    )
    queue.populate(UNITS)
    holds = Told()
    window = FixedWindow(queue, holds, {}, WorkerTally())
    window.size = size
    holds.window = window
    return window, holds


def outcome(kind: str, message: str = "boom") -> AttemptRecord:
    case = CaseRecord("t", kind, message=message if kind != "passed" else "")
    return AttemptRecord(unit="", outcome=kind, cases=[case])


def run(ahead: FixedWindow, outcomes: list[str], first: Lease | None = None) -> list[str]:
    """Run units with these outcomes in turn (the plugin's loop); the units run, in order."""
    lease = first or ahead.start()
    ran = []
    for kind in outcomes:
        if lease is None:
            break
        ran.append(lease.unit)
        ahead.next_item({})  # the teardown's question, as pytest asks it
        lease = ahead.finish(outcome(kind, f"error in {lease.unit}"), stopping=False)
    return ran


def seen(client: redis.Redis, keys: BuildKeys, name: str) -> None:
    """Worker `name` is live: it reserved (and holds a lease, so the queue is not done)."""
    QueueWorker(client, keys, name).reserve()


def test_a_pass_settles_the_held_failure_as_a_real_one(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, holds = worker(client, keys, "w1", limit=3)
    first = ahead.start()
    assert first is not None
    run(ahead, ["failed"], first)
    assert ahead.breaker.leases == [first]
    assert first in holds.held[-1]  # the held failure is heartbeat with the running unit
    assert first.unit not in BuildRecord.load(client, keys).results  # not acknowledged yet
    run(ahead, ["passed"], ahead.lease)
    results = BuildRecord.load(client, keys).results
    assert results[first.unit].outcome == "failed"
    assert ahead.tally.final_failures == [first.unit]


def test_a_trip_gives_the_streak_and_the_lease_behind_back_uncharged(
    client: redis.Redis, keys: BuildKeys
) -> None:
    broken, _ = worker(client, keys, "broken", max_requeues=5)
    seen(client, keys, "healthy")  # holds u0
    ran = run(broken, ["error", "error", "error"])
    assert ran == ["u1", "u2"]  # tripped at the second failure in a row
    assert broken.lease is None and not broken.tally.stopped  # its units went to others
    queue = client.lrange(keys.key("queue"), 0, -1)
    assert queue[:3] == ["u1", "u2", "u3"]  # the streak first, then the unrun lease
    assert not client.hgetall(keys.key("requeues")) and not client.exists(keys.key("requeued"))
    assert not client.hgetall(keys.key("takeovers"))
    assert client.hgetall(keys.key("given-back")) == {"u1": "broken", "u2": "broken"}
    record = BuildRecord.load(client, keys)
    assert not record.attempts and not record.results  # their outcome is another worker's
    (stopped,) = stopped_workers(client, keys)
    assert (stopped.worker, stopped.units, stopped.last) == ("broken", 2, False)
    assert stopped.first_error == "error in u1"


def test_a_trip_gives_back_every_unrun_lease_of_a_wider_window(
    client: redis.Redis, keys: BuildKeys
) -> None:
    """The unrun leases include those of the reply in flight when the streak ends."""
    broken, _ = worker(client, keys, "broken", size=4)
    seen(client, keys, "healthy")  # holds u0: a share of two live workers is u1..u3
    assert run(broken, ["error"] * 3) == ["u1", "u2"]
    assert client.lrange(keys.key("queue"), 0, -1) == UNITS[1:]  # streak, then the unrun ones
    assert client.hgetall(keys.key("given-back")) == {"u1": "broken", "u2": "broken"}
    assert client.zrange(keys.key("running"), 0, -1) == ["u0"]
    assert not BuildRecord.load(client, keys).attempts


def test_held_failures_stay_out_of_batches_and_of_what_the_helper_would_acknowledge(
    client: redis.Redis, keys: BuildKeys
) -> None:
    """Should the worker die, its held failures are released and run elsewhere."""
    ahead, holds = worker(client, keys, "w1", limit=3, size=4)
    assert run(ahead, ["passed", "failed", "failed", "passed"]) == UNITS[:4]
    u1, u2 = (lease for lease in holds.held[-2] if lease.unit in ("u1", "u2"))
    assert holds.held[-2][0].unit == "u3"  # while u3 ran, the streak was heartbeat with it
    assert u1 not in holds.finished and u2 not in holds.finished
    assert [lease.unit for lease in holds.finished] == ["u0"]
    results = BuildRecord.load(client, keys).results
    assert results["u1"].failed and results["u2"].failed  # settled by u3's pass


def test_failures_another_worker_gave_back_do_not_trip_a_healthy_worker(
    client: redis.Redis, keys: BuildKeys
) -> None:
    broken, _ = worker(client, keys, "broken")
    healthy, _ = worker(client, keys, "healthy")
    first = healthy.start()  # u0, with u1 behind
    run(broken, ["error", "error"])  # u2, u3: given back
    assert first is not None and first.unit == "u0"
    run(healthy, ["passed", "passed", "failed", "failed"], first)  # u0, u1, u2, u3
    assert not healthy.breaker.tripped
    assert [lease.unit for lease in healthy.breaker.leases] == ["u2", "u3"]
    run(healthy, ["passed"], healthy.lease)
    results = BuildRecord.load(client, keys).results
    assert results["u2"].outcome == results["u3"].outcome == "failed"  # real: settled by a pass


def test_a_broken_worker_gives_back_again_what_another_gave_back(
    client: redis.Redis, keys: BuildKeys
) -> None:
    first, _ = worker(client, keys, "broken-1")
    second, _ = worker(client, keys, "broken-2")
    seen(client, keys, "healthy")  # holds u0
    run(first, ["error", "error"])  # u1, u2: given back
    assert run(second, ["error"] * 4) == ["u1", "u2", "u3", "u4"]
    assert second.breaker.tripped
    assert client.lrange(keys.key("queue"), 0, -1) == ["u1", "u2", "u3", "u4", "u5"]
    assert not BuildRecord.load(client, keys).results  # no failure made real


def test_the_last_live_worker_to_trip_finalizes_its_streak_and_stops_the_build(
    client: redis.Redis, keys: BuildKeys
) -> None:
    alone, _ = worker(client, keys, "alone")
    assert run(alone, ["error", "error", "error"]) == ["u0", "u1"]
    results = BuildRecord.load(client, keys).results
    assert sorted(results) == ["u0", "u1"] and all(r.failed for r in results.values())
    assert alone.tally.final_failures == ["u0", "u1"] and alone.tally.stopped
    assert tripped_stop(client, keys)
    (stopped,) = stopped_workers(client, keys)
    assert stopped.last
    assert client.zscore(keys.key("running"), "u2") == 0  # the unrun lease: released


def test_out_of_work_with_a_streak_open_settles_it(client: redis.Redis, keys: BuildKeys) -> None:
    """Even with another worker live: handing the streak over would run a real failure at the
    end of the queue once more on every worker."""
    ahead, _ = worker(client, keys, "w1", limit=10)
    other = QueueWorker(client, keys, "w2")  # live, done with its unit
    lease = other.reserve()
    assert isinstance(lease, Lease)
    other.acknowledge(lease, outcome("passed"), reserve_next=False)
    assert run(ahead, ["failed"] * 6) == UNITS[1:]
    results = BuildRecord.load(client, keys).results
    assert sorted(results) == UNITS and all(results[unit].failed for unit in UNITS[1:])
    assert not client.exists(keys.key("tripped"))


def test_alone_out_of_work_with_a_streak_open_settles_it(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, _ = worker(client, keys, "w1", limit=10)
    run(ahead, ["failed"] * 6)
    results = BuildRecord.load(client, keys).results
    assert sorted(results) == UNITS and all(result.failed for result in results.values())


def test_a_failure_that_reaches_max_failures_is_not_held(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, _ = worker(client, keys, "w1", limit=3, max_failures=1)  # as -x
    assert run(ahead, ["failed", "passed"]) == ["u0"]
    assert ahead.tally.stopped and ahead.tally.final_failures == ["u0"]
    assert sorted(BuildRecord.load(client, keys).results) == ["u0"]


def test_under_max_failures_the_pass_that_settles_the_last_failure_stops_the_worker(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, _ = worker(client, keys, "w1", limit=3, max_failures=2)
    assert run(ahead, ["failed", "passed", "failed", "passed"]) == ["u0", "u1", "u2"]
    assert ahead.tally.stopped and ahead.tally.final_failures == ["u0", "u2"]
    assert sorted(BuildRecord.load(client, keys).results) == ["u0", "u1", "u2"]


def test_a_broken_worker_below_max_failures_counts_nothing(
    client: redis.Redis, keys: BuildKeys
) -> None:
    broken, _ = worker(client, keys, "broken", limit=2, max_failures=3)
    seen(client, keys, "healthy")
    assert run(broken, ["error"] * 3) == ["u1", "u2"]
    assert not client.exists(keys.key("failed"))
