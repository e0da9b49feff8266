"""The heartbeat helper, a real process against a real redis-server of each test's own: it
survives Redis going silent and Redis's error replies, says when its worker's leases may have
expired, is started again when it dies, and finalizes a unit hung past max-test-duration as an
error (timeout), giving back the lease held behind it at once.

Lease timing is short (one second), so each scenario takes a few seconds of real time.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import (
    AttemptRecord,
    BuildRecord,
    Lease,
    QueueSettings,
    QueueWorker,
    Reservation,
)
from ciqueue_gha.queue.helper_process import HeartbeatProcess
from ciqueue_gha.queue.settings import HelperConfig
from tests.support.redis_server import ControlledRedis

LEASE_TIMEOUT = 1.0
HEARTBEAT_INTERVAL = 0.2
WAIT_LIMIT = 20.0

SETTINGS = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=HEARTBEAT_INTERVAL)
KEYS = BuildKeys("helper")


@pytest.fixture
def server() -> Iterator[ControlledRedis]:
    """A redis-server this test may stop, fill or resume; resumed before it is stopped."""
    with ControlledRedis() as private:
        try:
            yield private
        finally:
            if private.process is not None:
                private.process.send_signal(signal.SIGCONT)


@pytest.fixture
def client(server: ControlledRedis) -> Iterator[redis.Redis]:
    conn = connect(server.url)
    yield conn
    conn.close()


def start_helper(url: str, worker: str = "A", max_test_duration: float = 60.0) -> HeartbeatProcess:
    return HeartbeatProcess(
        HelperConfig(
            redis_url=url,
            verify_tls=True,
            build_id=KEYS.build_id,
            attempt=KEYS.attempt,
            worker_id=worker,
            lease_timeout=LEASE_TIMEOUT,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            max_test_duration=max_test_duration,
        )
    )


def as_lease(reservation: Reservation | None) -> Lease:
    assert isinstance(reservation, Lease), reservation
    return reservation


def wait_until(condition: Callable[[], bool], what: str) -> None:
    limit = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > limit:
            pytest.fail(f"timed out after {WAIT_LIMIT} s waiting until {what}")
        time.sleep(0.02)


def deadline(client: redis.Redis, test: str) -> float:
    score = client.zscore(KEYS.key("running"), test)
    assert score is not None, f"{test} is not running"
    return float(score)


def redis_now_ms(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) / 1000


def wait_heartbeats(client: redis.Redis, lease: Lease) -> None:
    """Until the helper moves the lease's deadline beyond where it is now."""
    seen = deadline(client, lease.unit)
    wait_until(lambda: deadline(client, lease.unit) > seen, f"{lease.unit} is heartbeat")


def first_lease(client: redis.Redis, tests: list[str]) -> tuple[QueueWorker, Lease]:
    worker = QueueWorker(client, KEYS, "A", SETTINGS)
    worker.populate(tests)
    return worker, as_lease(worker.reserve())


def test_a_silent_redis_does_not_kill_the_helper_which_says_the_leases_may_be_lost(
    server: ControlledRedis, client: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    _, lease = first_lease(client, ["t1"])
    helper = start_helper(server.url)
    try:
        helper.hold(lease)
        wait_heartbeats(client, lease)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(3 * LEASE_TIMEOUT)  # every heartbeat of it times out
        server.process.send_signal(signal.SIGCONT)
        wait_heartbeats(client, lease)  # the same helper, beating again
        assert helper.process.poll() is None
        assert helper.restarts == 0
    finally:
        helper.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if "heartbeats have failed" in line]
    assert len(warnings) == 1, err  # said once, not at every retry
    assert "leases may have expired" in warnings[0]
    assert "ciqueue-gha: heartbeats reach Redis again" in err.splitlines(), err


def test_an_error_reply_does_not_kill_the_helper(
    server: ControlledRedis, client: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    """Redis out of memory answers every heartbeat with an error: the helper keeps trying."""
    _, lease = first_lease(client, ["t1"])
    helper = start_helper(server.url)
    try:
        helper.hold(lease)
        wait_heartbeats(client, lease)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        said: list[str] = []

        def warned() -> bool:
            said.append(capfd.readouterr().err)
            return "OOM" in "".join(said)

        wait_until(warned, "the helper warns that heartbeats fail")
        before = deadline(client, lease.unit)
        time.sleep(2 * LEASE_TIMEOUT)
        assert deadline(client, lease.unit) == before  # no heartbeat got through
        assert helper.process.poll() is None
        client.config_set("maxmemory", 0)
        wait_heartbeats(client, lease)
        assert helper.process.poll() is None
    finally:
        helper.close()
    err = "".join(said) + capfd.readouterr().err
    assert "Traceback" not in err, err
    assert "maxmemory" in err and "leases may have expired" in err, err


def test_a_helper_that_died_is_started_again_at_the_next_unit(
    server: ControlledRedis, client: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    worker, first = first_lease(client, ["t1", "t2"])
    helper = start_helper(server.url)
    try:
        helper.hold(first)
        wait_heartbeats(client, first)
        dead = helper.process
        dead.kill()
        dead.wait()
        second = as_lease(worker.reserve())
        helper.hold(second)  # the worker's next unit: it notices, and starts a new helper
        assert helper.process is not dead and helper.process.poll() is None
        assert helper.restarts == 1
        wait_heartbeats(client, second)
    finally:
        helper.close()
    err = capfd.readouterr().err
    assert "the heartbeat helper exited (code -9); starting a new one" in err, err


def test_a_unit_past_max_test_duration_is_a_timeout_error_and_its_lease_ahead_goes_back(
    server: ControlledRedis, client: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    """Without a worker that armed hang handling (no stack file), the helper records the
    unit and gives back what was held behind it, and signals no one."""
    max_test_duration = 1.5
    worker, hung = first_lease(client, ["hung", "behind"])
    behind = as_lease(worker.reserve())
    other = QueueWorker(client, KEYS, "B", SETTINGS)
    helper = start_helper(server.url, max_test_duration=max_test_duration)
    try:
        helper.hold(hung, behind)
        held_at = time.monotonic()
        wait_until(lambda: client.hexists(KEYS.key("results"), "hung"), "the hung unit is final")
        finalized_after = time.monotonic() - held_at
        # The unit held behind it went back at once: B takes it without waiting for a lease.
        assert deadline(client, "behind") <= redis_now_ms(client)
        assert as_lease(other.reserve()).unit == "behind"
        assert helper.process.poll() is None
    finally:
        helper.close()
    assert max_test_duration <= finalized_after < max_test_duration + 2, finalized_after
    record = BuildRecord.load(client, KEYS)
    result = record.results["hung"]
    assert (result.worker, result.lease, result.outcome) == ("A", hung.id, "error")
    assert result.cases[0].message.startswith("timeout: ran longer than --max-test-duration")
    assert [(a.record.worker, a.disposition) for a in record.attempts["hung"]] == [("A", "final")]
    assert "hung" not in record.takeovers  # not handed to anyone
    # A late acknowledge under the same lease is taken for a retry of the helper's: it changes
    # nothing, and the timeout stays the one result.
    worker.acknowledge(hung, AttemptRecord("", "passed"), reserve_next=False)
    again = BuildRecord.load(client, KEYS)
    assert again.results["hung"].outcome == "error"
    assert len(again.attempts["hung"]) == 1
    assert "hung ran longer than --max-test-duration (1.5 s)" in capfd.readouterr().err


def test_a_unit_taken_over_before_max_test_duration_is_not_recorded_as_hung(
    server: ControlledRedis, client: redis.Redis
) -> None:
    """A worker stopped past its lease (the helper with it) is taken over; when both resume
    and the unit is past max-test-duration, the helper's lease is not current any more: the
    new holder's run is left alone, with no timeout attempt beside it."""
    max_test_duration = 1.5
    _, stalled = first_lease(client, ["t"])
    other = QueueWorker(client, KEYS, "B", SETTINGS)
    helper = start_helper(server.url, max_test_duration=max_test_duration)
    try:
        helper.hold(stalled)
        wait_heartbeats(client, stalled)
        helper.process.send_signal(signal.SIGSTOP)
        client.zadd(KEYS.key("running"), {"t": 0}, xx=True)  # A's lease runs out
        taken = as_lease(other.reserve())
        time.sleep(max_test_duration + 0.5)
        helper.process.send_signal(signal.SIGCONT)  # past max-test-duration: its first look
        time.sleep(1.0)
        assert client.hget(KEYS.key("leases"), "t") == f"{taken.id} B"  # "<lease id> <holder>"
        assert helper.process.poll() is None
    finally:
        helper.close()
    record = BuildRecord.load(client, KEYS)
    assert record.attempts.get("t", []) == [] and "t" not in record.results
