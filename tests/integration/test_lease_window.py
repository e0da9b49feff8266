"""The lease window (plugin/ahead.py) against a real queue, driven as the plugin drives it
(start, the teardown's question, finish): the leases it runs, those it asks the heartbeat to
hold, and the calls it makes."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
import redis

from ciqueue_gha.plugin import ahead
from ciqueue_gha.plugin.ahead import WINDOW_FLOOR, LeaseWindow
from ciqueue_gha.plugin.late import LateNextItem
from ciqueue_gha.plugin.tally import WorkerTally
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, BuildRecord, Done, Lease, QueueWorker, Window
from ciqueue_gha.queue.settings import QueueSettings
from ciqueue_gha.queue.worker import Reservation

UNITS = [f"u{n}" for n in range(1, 9)]
#: Recorded durations that ask for a window of ten units (ten of them cover the floor).
SHORT = dict.fromkeys(UNITS, WINDOW_FLOOR / 10)


@pytest.fixture(autouse=True)
def floor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows sized by the floor alone: a loaded machine's slow round trip would otherwise
    widen them, and the calls these tests count would depend on the load."""
    monkeypatch.setattr(ahead, "WINDOW_ROUND_TRIPS", 0)


class Holds:
    """A heartbeat that keeps what it was asked to hold, newest last; with a `window`, it
    checks at each call that it was told exactly the leases the window holds."""

    def __init__(self) -> None:
        self.held: list[tuple[Lease, ...]] = []
        self.window: LeaseWindow | None = None

    def hold(self, running: Lease, *others: Lease, finished: Any = (), **told: Any) -> None:
        self.held.append((running, *others))
        self._check()

    def starting(self) -> AbstractContextManager[None]:
        return nullcontext()

    def given_back(self) -> list[Lease]:
        return []

    def run(self, running: Lease, finished: Any = ()) -> None:
        self.held.append((running, *(lease for lease in self.held[-1] if lease != running)))
        self._check()

    def _check(self) -> None:
        if self.window is not None:
            ahead = self.window
            done = (lease for lease, _ in ahead.done)
            assert set(self.held[-1]) == {ahead.lease, *ahead.held, *done, *ahead.breaker.leases}


class CountingWorker(QueueWorker):
    """A worker that counts its acknowledge calls (`settle`) by what each carried."""

    calls: list[tuple[int, int]]

    def settle(self, done: Any, reserve: int, **options: Any) -> Any:
        self.calls.append((len(done), reserve))
        return super().settle(done, reserve, **options)


def window(
    client: redis.Redis,
    keys: BuildKeys,
    settings: QueueSettings | None = None,
    expected: dict[str, float] | None = None,
    units: list[str] = UNITS,
) -> tuple[LeaseWindow, Holds, CountingWorker]:
    worker = CountingWorker(client, keys, "w1", settings)
    worker.calls = []
    worker.populate(units)
    holds = Holds()
    expected = SHORT if expected is None else expected
    holds.window = LeaseWindow(worker, holds, expected, WorkerTally())
    return holds.window, holds, worker


def passed() -> AttemptRecord:
    return AttemptRecord(unit="", outcome="passed")


def deadline_past(client: redis.Redis, keys: BuildKeys, unit: str) -> bool:
    seconds, micros = client.time()
    deadline = client.zscore(keys.key("running"), unit)
    return deadline is not None and deadline <= seconds * 1000 + micros / 1000


def run_all(policy: LeaseWindow, first: Lease | None) -> list[Lease]:
    ran = []
    lease = first
    while lease is not None:
        ran.append(lease)
        policy.next_item({})
        lease = policy.finish(passed(), stopping=False)
    return ran


def test_a_window_is_reserved_in_one_call_and_acknowledged_in_batches(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, holds, worker = window(client, keys)
    first = policy.start()
    assert first is not None and first.unit == "u1"
    assert [lease.unit for lease in holds.held[0]] == UNITS  # the whole window, one call
    assert worker.reserve_seq == 1
    ran = run_all(policy, first)
    assert [lease.unit for lease in ran] == UNITS
    # The first reserve (the eight recorded units together take less than the window covers:
    # all eight asked for), one acknowledge once half the window was spent (its reserve finds
    # nothing queued; when, depends on the worker's own unit times), one as the last unit's
    # teardown asks what follows (nothing held), one for the last: four calls for eight units.
    assert worker.calls[0] == (0, 8)
    carried = [done for done, _ in worker.calls]
    assert len(carried) == 4 and carried[-1] == 1 and sum(carried) == 8 and carried[1] >= 1
    assert sorted(BuildRecord.load(client, keys).results) == UNITS
    assert policy.tally.executed == 8 and policy.end == Done("exhausted")


def test_a_first_window_takes_the_fewest_longest_recorded_units_that_cover_it(
    client: redis.Redis, keys: BuildKeys
) -> None:
    # One unit recorded at 0.55 of the window's cover, the rest at a tenth: the longest, then
    # five of the others cover it, six units (sized by the longest alone: two). Then the
    # worker's own times, started from the median recorded.
    expected = {**SHORT, "u1": WINDOW_FLOOR * 0.55}
    policy, _, worker = window(client, keys, expected=expected)
    started = time.perf_counter()
    first = policy.start()
    assert first is not None and worker.calls[0] == (0, 6)
    policy.next_item({})
    policy.finish(passed(), stopping=False)
    ran = time.perf_counter() - started  # at least the unit's own time
    median = WINDOW_FLOOR / 10
    assert policy.unit_time is not None
    assert 0.8 * median <= policy.unit_time <= 0.8 * median + 0.2 * ran


def test_a_units_wait_for_the_next_lease_is_not_its_time(
    client: redis.Redis, keys: BuildKeys
) -> None:
    # Over a slow link the teardown waits a round trip for the next lease: counted as the
    # unit's time, a window of one would stay one.
    policy, _, _ = window(client, keys, units=["u1", "u2"], expected={})
    first = policy.start()  # nothing recorded: one lease
    assert first is not None and not policy.held
    late = policy.next_item({})
    assert isinstance(late, LateNextItem)
    answer = late._answer

    def slow_link() -> Reservation:
        time.sleep(1.0)
        return answer()

    late._answer = slow_link
    assert late.resolve() is None  # u2's items are not in the (empty) units given
    assert late.waited >= 1.0
    second = policy.finish(passed(), stopping=False)
    assert second is not None and second.unit == "u2"
    assert policy.unit_time is not None and policy.unit_time < 0.5


def test_the_reply_in_flight_is_read_when_the_window_needs_it(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, _, worker = window(client, keys, expected=dict.fromkeys(UNITS, WINDOW_FLOOR / 2))
    first = policy.start()  # units of half the floor: a window of two
    assert first is not None and list(policy.held) and len(policy.held) == 1
    second = policy.finish(passed(), stopping=False)  # half spent: acknowledge and reserve
    assert second is not None and second.unit == "u2"
    assert policy.in_flight is not None  # not waited for
    late = policy.next_item({})
    assert isinstance(late, LateNextItem)  # the unit after u2 is in the reply in flight
    third = policy.answer_teardown()
    assert isinstance(third, Lease) and third.unit == "u3"
    assert policy.tally.executed == 1 and [done for done, _ in worker.calls] == [0, 1]


def test_a_lease_held_that_expired_comes_back_and_replaces_the_older_one(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, _, _ = window(client, keys, units=["u1", "u2", "u3"])
    policy.start()
    stalled = policy.held[0]
    client.zadd(keys.key("running"), {stalled.unit: 0}, xx=True)  # this worker stalled
    ran = run_all(policy, policy.lease)
    assert [lease.unit for lease in ran] == ["u1", "u2", "u3"]  # u2 ran once
    record = BuildRecord.load(client, keys)
    assert record.results["u2"].lease > stalled.id  # acknowledged under the newer lease
    assert policy.tally.stale == 0 and policy.tally.executed == 3


def test_a_unit_expected_to_run_long_holds_nothing_behind_until_its_teardown(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, holds, _ = window(client, keys, expected=dict.fromkeys(UNITS, 1e9))
    first = policy.start()
    assert not policy.held and holds.held == [(first,)]
    late = policy.next_item({})
    assert isinstance(late, LateNextItem)
    assert late.resolve() is None  # u2 is not collected here: no next item
    assert isinstance(late.reply, Lease) and late.reply.unit == "u2"
    assert policy.finish(passed(), stopping=False) == late.reply
    assert not policy.held  # the acknowledge reserved nothing behind u2


def test_a_failure_that_reaches_the_cap_gives_the_window_back(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, _, _ = window(client, keys, QueueSettings(max_failures=1))
    policy.start()
    held = list(policy.held)
    failed = AttemptRecord(unit="", outcome="failed")
    assert policy.finish(failed, stopping=False) is None  # waited for: the build stopped
    assert policy.tally.stopped and policy.tally.final_failures == ["u1"]
    assert policy.end == Done("stopped")
    # Every lease held went back at once: their deadlines are already past.
    assert held and all(deadline_past(client, keys, lease.unit) for lease in held)


def test_pytest_told_to_stop_acknowledges_what_ran_and_gives_the_rest_back(
    client: redis.Redis, keys: BuildKeys
) -> None:
    policy, _, _ = window(client, keys)
    policy.start()
    policy.finish(passed(), stopping=False)
    held = list(policy.held)
    assert policy.finish(passed(), stopping=True) is None
    assert sorted(BuildRecord.load(client, keys).results) == ["u1", "u2"]
    assert all(deadline_past(client, keys, lease.unit) for lease in held)


def test_a_fast_worker_holds_no_more_than_its_share_while_another_runs_its_first_unit(
    client: redis.Redis, keys: BuildKeys
) -> None:
    """The demo's first build: one worker runs its first unit long, the other's are fast and
    it asks again after each. It takes work, but never holds (leased, not started) more than
    its share of what is not finalized: the rest stays queued for the busy one."""
    units = [f"u{n:02}" for n in range(1, 41)]
    busy = QueueWorker(client, keys, "busy")
    busy.populate(units)
    first = busy.reserve()
    assert isinstance(first, Lease)
    fast, _, _ = window(
        client, keys, expected=dict.fromkeys(units, WINDOW_FLOOR / 100), units=units
    )
    lease = fast.start()
    for _ in range(12):
        assert lease is not None
        fast.next_item({})
        lease = fast.finish(passed(), stopping=False)
        fast.answer_teardown()  # the reply in flight read
        queued, leased = client.llen(keys.key("queue")), client.zcard(keys.key("running"))
        assert len(fast.held) <= -(-(queued + leased) // 2), (len(fast.held), queued, leased)
    assert client.llen(keys.key("queue")) > 0
    _, grant = busy.settle([(first, passed())], 40).result()  # its first unit done at last
    assert isinstance(grant, Window) and len(grant.leases) >= 5
