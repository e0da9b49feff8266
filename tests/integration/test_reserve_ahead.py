"""The reserve-ahead policy (plugin/ahead.py) against a real queue: each row of its state
table, driven as the plugin drives it (start, the teardown's question, finish), with the
leases it returns and those it asks the heartbeat to hold."""

from __future__ import annotations

import redis

from ciqueue_gha.plugin.ahead import LateNextItem, ReserveAhead, WorkerTally
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, BuildRecord, Done, Lease, QueueWorker
from ciqueue_gha.queue.settings import QueueSettings
from ciqueue_gha.queue.worker import Finishing

UNITS = ["u1", "u2", "u3"]


class Holds:
    """A heartbeat that keeps what it was asked to hold, newest last."""

    def __init__(self) -> None:
        self.held: list[tuple[Lease, ...]] = []

    def hold(self, running: Lease, *behind: Lease) -> None:
        self.held.append((running, *behind))


def policy(
    client: redis.Redis,
    keys: BuildKeys,
    settings: QueueSettings | None = None,
    expected: dict[str, float] | None = None,
) -> tuple[ReserveAhead, Holds]:
    worker = QueueWorker(client, keys, "w1", settings)
    worker.populate(UNITS)
    holds = Holds()
    return ReserveAhead(worker, holds, expected or {}, WorkerTally()), holds


def passed() -> AttemptRecord:
    return AttemptRecord(unit="", outcome="passed")


def test_a_passed_unit_hands_on_the_lease_behind_and_reads_the_reply_in_the_teardown(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, holds = policy(client, keys)
    first = ahead.start()
    assert first is not None and first.unit == "u1"
    behind = ahead.behind
    assert isinstance(behind, Lease) and behind.unit == "u2"
    assert holds.held == [(first, behind)]  # running, and the lease behind it

    assert ahead.finish(passed(), stopping=False) == behind  # not waited for
    in_flight = ahead.behind
    assert isinstance(in_flight, Finishing)  # the reply in flight
    assert isinstance(ahead.next_item({}), LateNextItem)
    third = ahead.answer_teardown()
    assert isinstance(third, Lease) and third.unit == "u3"
    assert ahead.tally.executed == 1

    assert ahead.finish(passed(), stopping=False) == third
    ahead.answer_teardown()
    assert ahead.finish(passed(), stopping=False) is None
    assert ahead.behind == Done("exhausted")
    assert sorted(BuildRecord.load(client, keys).results) == UNITS


def test_a_lease_behind_that_expired_comes_back_and_replaces_the_running_one(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, holds = policy(client, keys)
    ahead.start()
    behind = ahead.behind
    assert isinstance(behind, Lease)
    client.zadd(keys.key("running"), {behind.unit: 0}, xx=True)  # this worker stalled
    assert ahead.finish(passed(), stopping=False) == behind
    ahead.answer_teardown()  # the reply: the running unit again, under a new lease
    regranted = ahead.lease
    assert regranted is not None and regranted.unit == behind.unit and regranted.id > behind.id
    after = ahead.behind
    assert isinstance(after, Lease) and after.unit == "u3"
    assert holds.held[-1] == (regranted, after)

    assert ahead.finish(passed(), stopping=False) == after
    ahead.answer_teardown()
    assert ahead.finish(passed(), stopping=False) is None
    record = BuildRecord.load(client, keys)
    assert record.results[behind.unit].lease == regranted.id  # counted under the new lease
    assert ahead.tally.stale == 0


def test_a_unit_expected_to_run_long_holds_nothing_behind_until_its_teardown(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, holds = policy(client, keys, expected={"u1": 1e9, "u2": 0.0, "u3": 0.0})
    first = ahead.start()
    assert ahead.behind is None
    assert holds.held == [(first,)]
    late = ahead.next_item({})
    assert isinstance(late, LateNextItem)
    assert late.resolve() is None  # u2 is not collected here: no next item
    assert isinstance(late.reply, Lease) and late.reply.unit == "u2"
    assert ahead.finish(passed(), stopping=False) == late.reply
    assert isinstance(ahead.behind, Finishing)


def test_a_failure_that_reaches_the_cap_releases_what_is_held(
    client: redis.Redis, keys: BuildKeys
) -> None:
    ahead, _ = policy(client, keys, QueueSettings(max_failures=1, max_consecutive_failures=0))
    ahead.start()
    held = ahead.behind
    assert isinstance(held, Lease)
    failed = AttemptRecord(unit="", outcome="failed")
    assert ahead.finish(failed, stopping=False) is None  # waited for: the build stopped
    assert ahead.tally.stopped and ahead.tally.final_failures == ["u1"]
    assert ahead.behind == Done("stopped")
    # The lease behind went back at once: its deadline is already past.
    seconds, micros = client.time()
    deadline = client.zscore(keys.key("running"), held.unit)
    assert deadline is not None and deadline <= seconds * 1000 + micros / 1000
