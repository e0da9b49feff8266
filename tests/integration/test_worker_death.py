"""A worker that dies with a unit running, seen by its heartbeat helper (crash.py): real
processes against a real redis-server.

The worker here is a small Python process that starts its helper, hands it the leases the
test reserved for it (as worker "A"), says the helper's pid, and on the test's word ends:
SIGKILL, or the normal end (the close message). The helper records the running unit as an
error, gives the lease behind it back at once, and exits; a normal end records nothing; a
lease taken over meanwhile is not the helper's to record (invariant 5); Redis errors while
recording are tried again.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import BuildRecord, Lease, QueueSettings, QueueWorker, Reservation
from ciqueue_gha.queue.record import AttemptRecord
from ciqueue_gha.queue.settings import HelperConfig
from ciqueue_gha.queue.worker import Done, Wait
from tests.support.redis_server import ControlledRedis

LEASE_TIMEOUT = 1.0
SETTINGS = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=0.2)
#: Seconds a helper gets to see its worker die, record, and exit.
EXIT_LIMIT = 20.0

WORKER = """
import json, os, signal, sys
from ciqueue_gha.queue import AttemptRecord, Lease
from ciqueue_gha.queue.helper_process import HeartbeatProcess
from ciqueue_gha.queue.settings import HelperConfig
spec = json.loads(sys.argv[1])
helper = HeartbeatProcess(HelperConfig(**spec["config"]))
ran = [(Lease(u, i), AttemptRecord.from_json(r)) for u, i, r in spec.get("finished", [])]
helper.hold(*[Lease(unit, lease) for unit, lease in spec["leases"]], finished=ran)
print(helper.process.pid, flush=True)
end = sys.stdin.readline().strip()
if end == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
helper.close()
"""


@dataclass
class Worker:
    """The worker process and its helper's pid."""

    process: subprocess.Popen[str]
    helper: int

    def end(self, how: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(how + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=EXIT_LIMIT)

    def wait_helper_exit(self) -> None:
        try:
            pidfd = os.pidfd_open(self.helper)
        except ProcessLookupError:  # exited, and reaped already
            return
        try:
            ready, _, _ = select.select([pidfd], [], [], EXIT_LIMIT)
        finally:
            os.close(pidfd)
        assert ready, "the helper did not exit"


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


def start_worker(
    workers: list[Worker],
    url: str,
    keys: BuildKeys,
    *leases: Lease,
    lease_timeout: float = 1.0,
    finished: tuple[tuple[Lease, AttemptRecord], ...] = (),
) -> Worker:
    config = HelperConfig(
        redis_url=url,
        verify_tls=True,
        build_id=keys.build_id,
        attempt=keys.attempt,
        worker_id="A",
        lease_timeout=lease_timeout,
        heartbeat_interval=lease_timeout / 5,
        max_test_duration=60.0,
    )
    spec = {
        "config": asdict(config),
        "leases": [[lease.unit, lease.id] for lease in leases],
        "finished": [[lease.unit, lease.id, record.to_json()] for lease, record in finished],
    }
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    worker = Worker(process, int(process.stdout.readline()))
    workers.append(worker)
    # Once the helper beats, it has read its leases and watches the worker (a worker dead
    # before that is recorded too, its exit status unknown).
    client = connect(url)
    seen = client.zscore(keys.key("running"), leases[0].unit)
    limit = time.monotonic() + EXIT_LIMIT
    while client.zscore(keys.key("running"), leases[0].unit) == seen:
        assert time.monotonic() < limit, "the helper never beat"
        time.sleep(0.02)
    client.close()
    return worker


def as_lease(reservation: Reservation | None) -> Lease:
    assert isinstance(reservation, Lease), reservation
    return reservation


def reserve_two(client: redis.Redis, keys: BuildKeys) -> tuple[Lease, Lease]:
    """Worker A's running lease and the one reserved behind it."""
    worker = QueueWorker(client, keys, "A", SETTINGS)
    worker.populate(["running", "behind"])
    return as_lease(worker.reserve()), as_lease(worker.reserve())


def ended_holding_two(
    how: str, workers: list[Worker], url: str, client: redis.Redis, keys: BuildKeys
) -> tuple[Worker, Lease]:
    """A worker holding a running lease and one behind it, ended `how`, its helper exited."""
    running, behind = reserve_two(client, keys)
    worker = start_worker(workers, url, keys, running, behind)
    worker.end(how)
    worker.wait_helper_exit()
    return worker, running


def test_a_worker_killed_in_a_unit_has_it_recorded_as_an_error_by_its_helper(
    redis_url: str, client: redis.Redis, keys: BuildKeys, workers: list[Worker]
) -> None:
    _, running = ended_holding_two("kill", workers, redis_url, client, keys)
    record = BuildRecord.load(client, keys)
    result = record.results["running"]
    assert (result.worker, result.lease, result.outcome) == ("A", running.id, "error")
    assert [case.message for case in result.cases] == ["running ended the worker (signal SIGKILL)"]
    assert [a.disposition for a in record.attempts["running"]] == ["final"]
    # The unit held behind went back at once: B takes it without waiting for the lease.
    other = QueueWorker(client, keys, "B", SETTINGS)
    assert as_lease(other.reserve()).unit == "behind"


def test_a_worker_that_ends_normally_has_nothing_recorded(
    redis_url: str, client: redis.Redis, keys: BuildKeys, workers: list[Worker]
) -> None:
    worker, running = ended_holding_two("close", workers, redis_url, client, keys)
    assert worker.process.returncode == 0
    record = BuildRecord.load(client, keys)
    assert record.attempts == {} and record.results == {}
    assert client.hget(keys.key("leases"), "running") == f"{running.id} A"  # "<id> <holder>"


def test_a_dead_workers_unit_taken_over_meanwhile_is_left_alone(
    redis_url: str, client: redis.Redis, keys: BuildKeys, workers: list[Worker]
) -> None:
    """The helper, stopped while its lease runs out and B takes the unit over, sees its
    worker dead when it resumes: the lease is not its own any more, so it records nothing."""
    running, behind = reserve_two(client, keys)
    worker = start_worker(workers, redis_url, keys, running, behind)
    os.kill(worker.helper, signal.SIGSTOP)
    try:
        client.zadd(keys.key("running"), {"running": 0}, xx=True)  # A's lease runs out
        taken = as_lease(QueueWorker(client, keys, "B", SETTINGS).reserve())
        assert taken.unit == "running"
        worker.end("kill")
    finally:
        os.kill(worker.helper, signal.SIGCONT)
    worker.wait_helper_exit()

    record = BuildRecord.load(client, keys)
    assert record.attempts.get("running", []) == [] and "running" not in record.results
    assert client.hget(keys.key("leases"), "running") == f"{taken.id} B"


def test_redis_errors_while_recording_are_tried_again(workers: list[Worker]) -> None:
    """Redis out of memory answers the helper's first calls with an error: it retries, and
    records the unit once Redis takes writes again."""
    keys = BuildKeys("dies")
    with ControlledRedis() as server:
        client = connect(server.url)
        running, behind = reserve_two(client, keys)
        worker = start_worker(workers, server.url, keys, running, behind, lease_timeout=10.0)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        worker.end("kill")
        time.sleep(1.0)  # the helper's first tries fail
        assert not client.hexists(keys.key("results"), "running")
        client.config_set("maxmemory", 0)
        worker.wait_helper_exit()
        result = BuildRecord.load(client, keys).results["running"]
        client.close()
    assert result.outcome == "error"


def test_a_killed_workers_attempts_not_yet_acknowledged_are_acknowledged_by_its_helper(
    workers: list[Worker], redis_url: str, client: redis.Redis, keys: BuildKeys
) -> None:
    """A window: "done" ran and passed, its attempt not acknowledged yet (it waits for the
    window's next call), "running" runs, "held" waits. The worker dies: its helper
    acknowledges "done" (it never runs again), records "running" as an error and gives
    "held" back at once."""
    worker = QueueWorker(client, keys, "A", SETTINGS)
    worker.populate(["done", "running", "held"])
    window = worker.reserve_window(3)
    assert not isinstance(window, (Wait, Done)), window
    done, running, held = window.leases
    passed = AttemptRecord(unit="done", outcome="passed")
    a = start_worker(workers, redis_url, keys, running, held, done, finished=((done, passed),))
    a.end("kill")
    a.wait_helper_exit()
    record = BuildRecord.load(client, keys)
    assert record.results["done"].lease == done.id and record.results["done"].outcome == "passed"
    assert record.results["running"].outcome == "error"
    seconds, micros = client.time()
    deadline = client.zscore(keys.key("running"), "held")  # given back: already past
    assert deadline is not None and deadline <= seconds * 1000 + micros / 1000
