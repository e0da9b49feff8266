"""A unit that overruns its window: the heartbeat helper gives back the leases held behind it
but the next (overrun.py), never while the worker starts a unit, and the window drops them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from ciqueue_gha.plugin.ahead import OVERRUN, WINDOW_FLOOR, LeaseWindow
from ciqueue_gha.plugin.tally import WorkerTally
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, BuildRecord, Lease, QueueWorker, Window
from ciqueue_gha.queue.helper_process import HeartbeatProcess
from ciqueue_gha.queue.settings import HelperConfig, QueueSettings
from tests.integration.test_heartbeat_helper import wait_until

SETTINGS = QueueSettings(lease_timeout=10.0)
UNITS = [f"u{n}" for n in range(1, 7)]
#: How long a unit runs before what is held behind it goes back, in these tests.
OVERRUN_AFTER = 0.3


@pytest.fixture
def helper(redis_url: str, keys: BuildKeys) -> Iterator[HeartbeatProcess]:
    process = HeartbeatProcess(
        HelperConfig(
            redis_url=redis_url,
            verify_tls=True,
            build_id=keys.build_id,
            attempt=keys.attempt,
            worker_id="A",
            lease_timeout=SETTINGS.lease_timeout,
            heartbeat_interval=SETTINGS.heartbeat_every,
            max_test_duration=60.0,
        )
    )
    yield process
    process.close()


def window_of(worker: QueueWorker, count: int) -> list[Lease]:
    grant = worker.reserve_window(count)
    assert isinstance(grant, Window)
    return list(grant.leases)


def queued(client: redis.Redis, keys: BuildKeys) -> list[str]:
    return list(client.lrange(keys.key("queue"), 0, -1))


def test_the_leases_behind_an_overrunning_unit_go_back_but_the_next(
    client: redis.Redis, keys: BuildKeys, helper: HeartbeatProcess
) -> None:
    worker = QueueWorker(client, keys, "A", SETTINGS)
    worker.populate(UNITS)
    running, *held = window_of(worker, 4)
    helper.hold(running, *held, unstarted=3, overrun=OVERRUN_AFTER)
    wait_until(lambda: queued(client, keys)[:2] == ["u3", "u4"], "u3 and u4 are queued again")
    assert queued(client, keys) == ["u3", "u4", "u5", "u6"]  # at the head, in order
    with helper.starting():
        assert helper.given_back() == held[1:]
    # What the worker still holds is its own: the next unit, and the one that runs.
    assert set(client.hkeys(keys.key("leases"))) == {"u1", "u2"}
    taken = window_of(QueueWorker(client, keys, "B", SETTINGS), 2)
    assert [lease.unit for lease in taken] == ["u3", "u4"]


def test_nothing_goes_back_while_the_worker_starts_a_unit(
    client: redis.Redis, keys: BuildKeys, helper: HeartbeatProcess
) -> None:
    """The worker holds the start lock past the overrun and says its next unit started: the
    helper, once it has the lock, finds that message and gives nothing back for the unit
    that ran; the next one's overrun gives back what is behind its successor."""
    worker = QueueWorker(client, keys, "A", SETTINGS)
    worker.populate(UNITS)
    running, *held = window_of(worker, 4)
    with helper.starting():
        helper.hold(running, *held, unstarted=3, overrun=OVERRUN_AFTER)
        time.sleep(OVERRUN_AFTER * 3)
        assert queued(client, keys) == ["u5", "u6"]
        helper.run(held[0])  # u2 starts: u3 is its next, u4 behind it
    wait_until(lambda: queued(client, keys)[:1] == ["u4"], "u4 is queued again")
    assert queued(client, keys) == ["u4", "u5", "u6"]
    with helper.starting():
        assert helper.given_back() == [held[2]]


def test_a_window_drops_what_went_back_and_every_unit_runs_once(
    client: redis.Redis, keys: BuildKeys, helper: HeartbeatProcess
) -> None:
    worker = QueueWorker(client, keys, "A", SETTINGS)
    worker.populate(UNITS)
    window = LeaseWindow(worker, helper, dict.fromkeys(UNITS, WINDOW_FLOOR / 10), WorkerTally())
    ran = [window.start()]
    assert ran[0] is not None and len(window.held) == 5  # the whole suite, one worker live
    window.next_item({})
    # The first unit runs on, past OVERRUN covers (on loopback, the window's floor).
    started = time.monotonic()
    wait_until(lambda: len(queued(client, keys)) == 4, "u3 to u6 are queued again")
    assert time.monotonic() - started >= OVERRUN * WINDOW_FLOOR * 0.9
    other = QueueWorker(client, keys, "B", SETTINGS)
    taken: list[Lease] = []
    while queued(client, keys):  # its share at a time: A is live too
        taken += window_of(other, 10)
    assert [lease.unit for lease in taken] == ["u3", "u4", "u5", "u6"]
    other.settle([(lease, AttemptRecord(lease.unit, "passed")) for lease in taken], 0).result()
    while (lease := window.finish(AttemptRecord("", "passed"), stopping=False)) is not None:
        ran.append(lease)
        window.next_item({})
    assert [lease.unit for lease in ran if lease is not None] == ["u1", "u2"]
    record = BuildRecord.load(client, keys)
    assert sorted(record.results) == UNITS
    assert all(len(attempts) == 1 for attempts in record.attempts.values())
    assert {record.results[unit].worker for unit in ("u1", "u2")} == {"A"}
