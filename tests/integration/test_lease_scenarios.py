"""Lease scenarios, one regression test each, with two workers "A" and "B" on one build.

A lease is made to expire by rewriting its deadline in the running zset (the interleaving is
then explicit and nothing sleeps); only the scenarios about the heartbeat helper and a killed
worker need real time, and they keep to a few lease timeouts of one second.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import (
    AttemptRecord,
    BuildRecord,
    Done,
    Lease,
    QueueSettings,
    QueueWorker,
    Reservation,
    Supervisor,
    Verdict,
    Wait,
    Window,
)
from ciqueue_gha.queue.helper_process import HeartbeatProcess
from ciqueue_gha.queue.settings import HelperConfig
from ciqueue_gha.redis_server import PrivateRedis
from tests.support.drain import drain_queue
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]

#: Lease timing for the scenarios that run in real time.
LEASE_TIMEOUT = 1.0
HEARTBEAT_INTERVAL = 0.2
#: A worker in a process of its own, with its heartbeat helper: a loaded machine (./check runs
#: four test processes on two cores) can hold a process off the CPU for most of a second.
PROCESS_LEASE_TIMEOUT = 3.0
PROCESS_HEARTBEAT_INTERVAL = 0.3


# --- helpers -------------------------------------------------------------------------------


def two_workers(
    client: redis.Redis, keys: BuildKeys, tests: list[str], settings: QueueSettings | None = None
) -> tuple[QueueWorker, QueueWorker]:
    """Workers A and B on one build, the queue populated with `tests` (A leads)."""
    a = QueueWorker(client, keys, "A", settings)
    b = QueueWorker(client, keys, "B", settings)
    assert a.populate(tests).leader
    assert not b.populate(tests).leader
    return a, b


def deadline(client: redis.Redis, keys: BuildKeys, test: str) -> float | None:
    """The test's lease deadline in the running zset (ms, Redis clock); None when not running."""
    return client.zscore(keys.key("running"), test)


def expire_lease(client: redis.Redis, keys: BuildKeys, test: str) -> None:
    """Force the lease on `test` to expire now, as if its holder had stopped heartbeating."""
    assert deadline(client, keys, test) is not None, f"{test} is not running"
    client.zadd(keys.key("running"), {test: 0}, xx=True)


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def current_lease(client: redis.Redis, keys: BuildKeys, test: str) -> int | None:
    entry = client.hget(keys.key("leases"), test)  # "<lease id> <holder>"
    return None if entry is None else int(entry.split(" ")[0])


def leases_issued(client: redis.Redis, keys: BuildKeys) -> int:
    return int(client.get(keys.key("lease-counter")) or 0)


def queued(client: redis.Redis, keys: BuildKeys) -> list[str]:
    return [str(test) for test in client.lrange(keys.key("queue"), 0, -1)]


def attempt(outcome: str) -> AttemptRecord:
    # The worker fills in test, lease and worker from the lease it acknowledges.
    return AttemptRecord(unit="", outcome=outcome)


def as_lease(reservation: Reservation | None) -> Lease:
    assert isinstance(reservation, Lease), f"expected a lease, got {reservation!r}"
    return reservation


def take_over(
    client: redis.Redis, keys: BuildKeys, a: QueueWorker, b: QueueWorker
) -> tuple[Lease, Lease]:
    """A leases the first test, its lease expires, B takes the test over: (A's, B's lease)."""
    lease_a = as_lease(a.reserve())
    expire_lease(client, keys, lease_a.unit)
    lease_b = as_lease(b.reserve())
    assert lease_b.unit == lease_a.unit
    assert lease_b.id > lease_a.id
    assert current_lease(client, keys, lease_a.unit) == lease_b.id
    return lease_a, lease_b


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > limit:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


def reserve_until_lease(worker: QueueWorker, timeout: float) -> Lease:
    """Reserve again and again (as a waiting worker does) until a lease comes; fail on timeout."""
    limit = time.monotonic() + timeout
    while not isinstance(reservation := worker.reserve(), Lease):
        assert isinstance(reservation, Wait), reservation
        if time.monotonic() > limit:
            pytest.fail(f"{worker.worker_id} got no lease within {timeout} s")
        time.sleep(0.02)
    return reservation


def helper_config(redis_url: str, keys: BuildKeys, worker_id: str, **timing: float) -> HelperConfig:
    return HelperConfig(
        redis_url=redis_url,
        verify_tls=True,
        build_id=keys.build_id,
        attempt=keys.attempt,
        worker_id=worker_id,
        lease_timeout=timing.get("lease_timeout", LEASE_TIMEOUT),
        heartbeat_interval=timing.get("heartbeat_interval", HEARTBEAT_INTERVAL),
        max_test_duration=timing.get("max_test_duration", 60.0),
    )


@pytest.fixture
def supervisor(client: redis.Redis, keys: BuildKeys) -> Supervisor:
    return Supervisor(client, keys)


def wait_first_heartbeat(client: redis.Redis, keys: BuildKeys, lease: Lease) -> None:
    """Wait until the helper has moved the deadline the reserve set: it is heartbeating."""
    reserved = deadline(client, keys, lease.unit)
    assert reserved is not None
    wait_until(
        lambda: (deadline(client, keys, lease.unit) or 0) > reserved,
        timeout=5 * LEASE_TIMEOUT,
        what="the heartbeat helper moved the deadline",
    )


# --- 1 to 3: a stale holder acknowledges, requeues, heartbeats -----------------------------


def test_stale_acknowledge_keeps_the_test_running_until_the_new_holder_acknowledges(
    client: redis.Redis, keys: BuildKeys, supervisor: Supervisor
) -> None:
    a, b = two_workers(client, keys, ["t"])
    lease_a, lease_b = take_over(client, keys, a, b)
    deadline_b = deadline(client, keys, "t")

    disposition, next_for_a = a.acknowledge(lease_a, attempt("failed"))

    assert disposition == "stale"
    assert isinstance(next_for_a, Wait)  # B still runs the only test
    assert deadline(client, keys, "t") == deadline_b
    assert current_lease(client, keys, "t") == lease_b.id
    status = supervisor.status()
    assert not status.exhausted
    assert (status.running, status.finalized, status.failed) == (1, 0, 0)

    disposition, next_for_b = b.acknowledge(lease_b, attempt("passed"))

    assert disposition == "final"
    assert next_for_b == Done("exhausted")
    status = supervisor.status()
    assert status.exhausted
    assert status.failed == 0  # A's stale failure does not count
    record = BuildRecord.load(client, keys)
    history = [(x.record.worker, x.record.lease, x.disposition) for x in record.attempts["t"]]
    assert history == [("A", lease_a.id, "stale"), ("B", lease_b.id, "final")]
    assert (record.results["t"].worker, record.results["t"].outcome) == ("B", "passed")
    assert record.takeovers == {"t": 1}


def test_stale_requeue_is_rejected_and_the_test_stays_running_under_the_new_holder(
    client: redis.Redis, keys: BuildKeys, supervisor: Supervisor
) -> None:
    settings = QueueSettings(max_requeues=3, requeue_tolerance=1.0)
    a, b = two_workers(client, keys, ["t"], settings)
    assert a.may_requeue  # A's requeue is refused for its stale lease, not for a cap
    lease_a, lease_b = take_over(client, keys, a, b)
    deadline_b = deadline(client, keys, "t")

    disposition, next_for_a = a.requeue(lease_a, attempt("failed"))

    assert disposition == "stale"
    assert isinstance(next_for_a, Wait)  # not handed the test back
    assert queued(client, keys) == []
    assert deadline(client, keys, "t") == deadline_b
    assert current_lease(client, keys, "t") == lease_b.id
    assert client.hget(keys.key("requeues"), "t") is None
    assert client.get(keys.key("requeued")) is None
    assert not supervisor.status().exhausted

    disposition, _ = b.acknowledge(lease_b, attempt("passed"))
    assert disposition == "final"
    assert supervisor.status().exhausted
    record = BuildRecord.load(client, keys)
    assert [x.disposition for x in record.attempts["t"]] == ["stale", "final"]
    assert record.results["t"].worker == "B"


def test_stale_heartbeat_returns_false_and_leaves_the_new_holders_deadline_alone(
    client: redis.Redis, keys: BuildKeys
) -> None:
    a, b = two_workers(client, keys, ["t"])
    lease_a, lease_b = take_over(client, keys, a, b)
    deadline_b = deadline(client, keys, "t")

    assert a.heartbeat(lease_a) is False
    assert deadline(client, keys, "t") == deadline_b
    assert current_lease(client, keys, "t") == lease_b.id

    # Pull B's deadline close, so that its heartbeat visibly pushes it out again.
    soon = redis_now_ms(client) + 500
    client.zadd(keys.key("running"), {"t": soon}, xx=True)
    before = redis_now_ms(client)
    assert b.heartbeat(lease_b) is True
    moved = deadline(client, keys, "t")
    assert moved is not None
    assert moved >= before + b.settings.lease_timeout_ms > soon
    assert a.heartbeat(lease_a) is False
    assert deadline(client, keys, "t") == moved


# --- 4 to 6: real time, the real heartbeat helper ------------------------------------------


def test_a_live_worker_keeps_a_test_that_runs_longer_than_the_lease_timeout(
    client: redis.Redis, keys: BuildKeys, redis_url: str
) -> None:
    settings = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=HEARTBEAT_INTERVAL)
    a, b = two_workers(client, keys, ["slow"], settings)
    helper = HeartbeatProcess(helper_config(redis_url, keys, "A"))
    try:
        lease = as_lease(a.reserve())
        helper.hold(lease)
        wait_first_heartbeat(client, keys, lease)
        held_until = time.monotonic() + 3 * LEASE_TIMEOUT
        reserves = 0
        while time.monotonic() < held_until:
            assert isinstance(b.reserve(), Wait)
            reserves += 1
            assert (deadline(client, keys, "slow") or 0) > redis_now_ms(client)
            time.sleep(0.05)
        assert helper.process.poll() is None
        assert reserves > 10
        assert a.acknowledge(lease, attempt("passed")) == ("final", Done("exhausted"))
    finally:
        helper.close()
    assert BuildRecord.load(client, keys).takeovers == {}
    assert leases_issued(client, keys) == 1


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stdout, or a test failure if none comes in time."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if readable else ""
    if not line:
        pytest.fail(f"the worker process printed no lease within {timeout} s")
    return line


def _process_gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for its new parent to reap it counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def _is_heartbeat_helper(pid: int) -> bool:
    try:
        return b"ciqueue_gha.queue.heartbeat" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture
def worker_process(
    redis_url: str, keys: BuildKeys
) -> Iterator[Callable[[str, list[str]], subprocess.Popen[str]]]:
    """Starts `tests/support/worker_process.py`; kills what it started (and its helper) after."""
    started: list[subprocess.Popen[str]] = []

    def start(worker_id: str, tests: list[str]) -> subprocess.Popen[str]:
        args = [sys.executable, "-m", "tests.support.worker_process", redis_url, keys.build_id]
        args += [worker_id, *tests, "--lease-timeout", str(PROCESS_LEASE_TIMEOUT)]
        args += ["--heartbeat-interval", str(PROCESS_HEARTBEAT_INTERVAL)]
        process = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_killed_worker_loses_its_test_within_the_lease_timeout(
    client: redis.Redis,
    keys: BuildKeys,
    worker_process: Callable[[str, list[str]], subprocess.Popen[str]],
) -> None:
    settings = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=HEARTBEAT_INTERVAL)
    b = QueueWorker(client, keys, "B", settings)
    b.populate(["t"])
    a = worker_process("A", ["t"])
    helper_pid = 0
    try:
        held = json.loads(_read_line(a, timeout=15))
        helper_pid = held["helper_pid"]
        lease = Lease(held["lease"][0], held["lease"][1])
        assert held["worker_pid"] == a.pid
        assert lease.unit == "t"
        # Alive, A keeps its test past the lease timeout: its helper heartbeats.
        alive_until = time.monotonic() + 1.5 * PROCESS_LEASE_TIMEOUT
        while time.monotonic() < alive_until:
            assert isinstance(b.reserve(), Wait)
            time.sleep(0.05)

        # The worker with its helper, as when its runner is lost (killed alone, its helper
        # records its unit as an error: test_worker_death.py).
        os.killpg(a.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        a.wait(timeout=5)
        taken = reserve_until_lease(b, timeout=PROCESS_LEASE_TIMEOUT + 3)
        taken_after = time.monotonic() - killed_at

        assert taken_after < PROCESS_LEASE_TIMEOUT + 2
        assert (taken.unit, taken.id > lease.id) == ("t", True)
        wait_until(lambda: _process_gone(helper_pid), timeout=3, what="the helper exited")
        assert b.acknowledge(taken, attempt("passed")) == ("final", Done("exhausted"))
    finally:
        if helper_pid and not _process_gone(helper_pid) and _is_heartbeat_helper(helper_pid):
            os.kill(helper_pid, signal.SIGKILL)
    record = BuildRecord.load(client, keys)
    assert record.takeovers == {"t": 1}
    assert record.results["t"].worker == "B"


def nothing_to_take_over(worker: QueueWorker, seconds: float) -> None:
    """For `seconds`, `worker` finds nothing to take over (every lease is kept alive)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert isinstance(worker.reserve(), Wait)
        time.sleep(0.1)


def take_over_all(worker: QueueWorker, count: int) -> list[Lease]:
    """Reserve windows, waiting out waits, until `worker` holds `count` leases."""
    taken: list[Lease] = []
    while len(taken) < count:
        grant = worker.wait_for_window(worker.reserve_window(count), count)
        assert isinstance(grant, Window), grant
        taken += grant.leases
    return taken


def test_a_killed_worker_holding_a_window_of_8_has_all_8_taken_over_once(
    client: redis.Redis,
    keys: BuildKeys,
    worker_process: Callable[[str, list[str]], subprocess.Popen[str]],
) -> None:
    """A worker (a real process, its heartbeat helper beating the whole window) holds 8 leases
    and is SIGKILLed with its helper, as when its runner is lost. On Redis's clock: no deadline
    of the window lies past the kill + the lease timeout (so nothing waits longer than that),
    B takes all 8 over within lease timeout + 2 s of the kill, and each is finalized once."""
    units = [f"w{n}" for n in range(8)]
    settings = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=HEARTBEAT_INTERVAL)
    b = QueueWorker(client, keys, "B", settings)
    b.populate(units)
    a = worker_process("A", [*units, "--window", "8"])
    held = json.loads(_read_line(a, timeout=15))
    window = [Lease(unit, lease) for unit, lease in held["window"]]
    assert sorted(lease.unit for lease in window) == units  # the whole queue, one call
    # Alive, A keeps every lease of its window past the lease timeout: one heartbeat each beat.
    nothing_to_take_over(b, 1.5 * PROCESS_LEASE_TIMEOUT)

    os.killpg(a.pid, signal.SIGKILL)
    a.wait(timeout=5)
    killed_ms = redis_now_ms(client)
    timeout_ms = PROCESS_LEASE_TIMEOUT * 1000
    # A heartbeat sent just before the kill may reach Redis just after this look: a margin.
    deadlines = [client.zscore(keys.key("running"), unit) or 0 for unit in units]
    assert all(d <= killed_ms + timeout_ms + 500 for d in deadlines), (killed_ms, deadlines)

    taken = take_over_all(b, len(units))
    assert sorted(lease.unit for lease in taken) == units
    late_ms = max(lease.granted_at * 1000 for lease in taken) - killed_ms
    assert late_ms <= timeout_ms + 2000, f"taken over {late_ms:.0f} ms after the kill"

    dispositions, after = b.settle([(lease, attempt("passed")) for lease in taken], 1).result()
    assert dispositions == ["final"] * 8 and after == Done("exhausted")
    record = BuildRecord.load(client, keys)
    assert record.takeovers == dict.fromkeys(units, 1)
    assert {unit: result.worker for unit, result in record.results.items()} == dict.fromkeys(
        units, "B"
    )
    # A acknowledged nothing: one attempt a unit, B's, finalized once.
    assert {unit: len(tried) for unit, tried in record.attempts.items()} == dict.fromkeys(units, 1)


def test_the_lease_an_unread_acknowledge_reserved_is_kept_alive_by_the_helper(
    client: redis.Redis, keys: BuildKeys, redis_url: str
) -> None:
    """A worker sends its acknowledge and runs the next test before reading the reply: the
    lease that acknowledge reserved is one its helper was never told about. The heartbeat of
    the running lease keeps the worker's latest grant alive too, past the lease timeout."""
    settings = QueueSettings(lease_timeout=LEASE_TIMEOUT, heartbeat_interval=HEARTBEAT_INTERVAL)
    a, b = two_workers(client, keys, ["done", "running", "unread"], settings)
    helper = HeartbeatProcess(helper_config(redis_url, keys, "A"))
    try:
        done, running = as_lease(a.reserve()), as_lease(a.reserve())
        helper.hold(running)
        finishing = a.acknowledge_later(done, attempt("passed"))  # reserves "unread"
        wait_first_heartbeat(client, keys, running)
        held_until = time.monotonic() + 3 * LEASE_TIMEOUT
        while time.monotonic() < held_until:
            assert isinstance(b.reserve(), Wait)  # nothing expired for B to take over
            time.sleep(0.05)
        assert finishing.result() == (["final"], Window((Lease("unread", running.id + 1),)))
    finally:
        helper.close()
    assert BuildRecord.load(client, keys).takeovers == {}
    # Without a heartbeat the unread lease runs out like any other, and B takes it over.
    assert a.acknowledge(running, attempt("passed"), reserve_next=False)[0] == "final"
    assert reserve_until_lease(b, timeout=LEASE_TIMEOUT + 2).unit == "unread"


# --- 7: an expired lease on a test that already has a completed attempt --------------------


@pytest.mark.parametrize("tests", [["t1", "t2"], ["t1"]], ids=["more-queued", "last-test"])
def test_an_expired_lease_on_a_test_with_a_completed_attempt_is_finalized_not_rerun(
    client: redis.Redis, keys: BuildKeys, supervisor: Supervisor, tests: list[str]
) -> None:
    a, b = two_workers(client, keys, tests)
    lease_a, lease_b = take_over(client, keys, a, b)
    disposition, _ = a.acknowledge(lease_a, attempt("failed"), reserve_next=False)
    assert disposition == "stale"
    expire_lease(client, keys, "t1")  # B's lease runs out too, before B acknowledges

    following = b.reserve()

    assert deadline(client, keys, "t1") is None
    record = BuildRecord.load(client, keys)
    assert (record.results["t1"].worker, record.results["t1"].lease) == ("A", lease_a.id)
    assert record.results["t1"].outcome == "failed"
    assert supervisor.status().failed == 1
    if len(tests) == 2:
        assert following == Lease("t2", lease_b.id + 1)
        assert b.acknowledge(following, attempt("passed")) == ("final", Done("exhausted"))
    else:
        assert following == Done("exhausted")
    # B's late word on t1 changes nothing: not its lease any more, and t1 is final.
    assert b.heartbeat(lease_b) is False
    late = b.acknowledge(lease_b, attempt("passed"), reserve_next=False)
    assert late == ("stale", None)
    assert leases_issued(client, keys) == len(tests) + 1  # t1 was never leased a third time
    status = supervisor.status()
    assert status.exhausted
    assert status.failed == 1
    record = BuildRecord.load(client, keys)
    assert record.results["t1"].lease == lease_a.id
    assert record.takeovers == {"t1": 1}
    assert [x.record.worker for x in record.attempts["t1"]] == ["A", "B"]


# --- 8: a reserve whose reply is lost and retried -------------------------------------------


def test_a_retried_reserve_returns_the_same_lease_and_takes_one_test(
    client: redis.Redis, keys: BuildKeys
) -> None:
    a, b = two_workers(client, keys, ["t1", "t2", "t3"])

    first = as_lease(a.reserve())
    retried = a.reserve(retry=True)  # the same call again: its reply was lost

    assert retried == first
    assert queued(client, keys) == ["t2", "t3"]
    assert leases_issued(client, keys) == 1
    other = as_lease(b.reserve())
    assert other.unit != first.unit
    assert queued(client, keys) == ["t3"]
    assert a.reserve(retry=True) == first  # still A's, B did not disturb it


class _HandedOut:
    """Every lease handed out, call by call, to check that no test goes to two workers."""

    def __init__(self) -> None:
        self.leases: list[tuple[str, Lease]] = []

    def note(self, worker: QueueWorker, reservation: Reservation | None) -> Reservation | None:
        if isinstance(reservation, Lease):
            self.leases.append((worker.worker_id, reservation))
        return reservation

    def tests(self) -> Counter[str]:
        return Counter(lease.unit for _, lease in self.leases)


@pytest.fixture
def proxy(redis_server: PrivateRedis) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", redis_server.port) as running:
        yield running


def test_a_lost_reply_on_the_wire_neither_loses_nor_doubles_a_test(
    client: redis.Redis, keys: BuildKeys, proxy: TcpProxy, supervisor: Supervisor
) -> None:
    tests = [f"t{i}" for i in range(8)]
    handed = _HandedOut()
    with closing(connect(proxy.url())) as through_proxy:
        a = QueueWorker(through_proxy, keys, "A")
        b = QueueWorker(client, keys, "B")
        a.populate(tests)
        b.populate(tests)
        a.scripts.load_all()  # connected and loaded: the next request on the wire is A's

        proxy.drop_next_reply()
        lease_a = as_lease(handed.note(a, a.reserve()))

        assert proxy.dropped_replies == 1  # the reserve ran, its reply was lost, the call retried
        assert proxy.accepted == 2  # the retry came on a new connection
        assert leases_issued(client, keys) == 1
        assert queued(client, keys) == tests[1:]
        lease_b = as_lease(handed.note(b, b.reserve()))
        assert lease_b.unit != lease_a.unit

        proxy.drop_next_reply()
        disposition, reservation = a.acknowledge(lease_a, attempt("passed"))

        assert proxy.dropped_replies == 2
        assert disposition == "final"
        following = as_lease(handed.note(a, reservation))
        assert following.unit not in (lease_a.unit, lease_b.unit)
        assert leases_issued(client, keys) == 3

        drops = _drain({a: following, b: lease_b}, a, handed, proxy)

    assert drops > 0
    assert proxy.dropped_replies == 2 + drops
    assert handed.tests() == Counter(tests)  # every test handed out once, to one worker
    assert leases_issued(client, keys) == len(tests)
    record = BuildRecord.load(client, keys)
    assert sorted(record.results) == sorted(tests)
    assert all([x.disposition for x in record.attempts[t]] == ["final"] for t in tests)
    assert record.takeovers == {}
    assert supervisor.status().exhausted


def _drain(
    current: dict[QueueWorker, Reservation | None],
    lossy: QueueWorker,
    handed: _HandedOut,
    proxy: TcpProxy,
) -> int:
    """Acknowledge and reserve in turns until every worker is done; every reply to `lossy`
    is lost once. Returns how many replies were dropped."""
    drops = 0
    for _ in range(100):
        if all(isinstance(r, Done) for r in current.values()):
            return drops
        for worker, reservation in list(current.items()):
            if isinstance(reservation, Done) or reservation is None:
                continue
            if worker is lossy:
                proxy.drop_next_reply()
                drops += 1
            if isinstance(reservation, Lease):
                disposition, reservation = worker.acknowledge(reservation, attempt("passed"))
                assert disposition == "final"
            else:
                reservation = worker.reserve()
            current[worker] = handed.note(worker, reservation)
    pytest.fail(f"the queue did not drain: {current}")


# --- a full drain ---------------------------------------------------------------------------


def test_a_full_drain_by_both_workers_is_exhausted_with_every_test_finalized_once(
    redis_url: str, keys: BuildKeys, client: redis.Redis
) -> None:
    tests = [f"t{i:02d}" for i in range(20)]
    flaky = "t03"  # fails once, passes when requeued
    settings = QueueSettings(max_requeues=1, requeue_tolerance=1.0)
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    def execute(lease: Lease) -> AttemptRecord:
        with lock:
            runs[lease.unit] += 1
            first = runs[lease.unit] == 1
        time.sleep(0.005)
        return attempt("failed" if lease.unit == flaky and first else "passed")

    with (
        closing(connect(redis_url)) as client_a,
        closing(connect(redis_url)) as client_b,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        workers = [QueueWorker(c, keys, w, settings) for c, w in ((client_a, "A"), (client_b, "B"))]
        for worker in workers:
            worker.populate(tests)
        executed = [pool.submit(drain_queue, worker, execute) for worker in workers]
        outcome = Supervisor(client, keys, poll_interval=0.02, report_timeout=20).wait()
        runs_when_exhausted = sum(runs.values())
        counts = [future.result(timeout=20) for future in executed]

    assert outcome.verdict is Verdict.EXHAUSTED
    assert runs_when_exhausted == len(tests) + 1  # nothing still running when it said so
    assert sum(counts) == len(tests) + 1
    assert all(counts), "both workers ran tests"
    assert runs == Counter({**dict.fromkeys(tests, 1), flaky: 2})
    record = BuildRecord.load(client, keys)
    assert sorted(record.results) == sorted(tests)
    for test in tests:
        dispositions = [x.disposition for x in record.attempts[test]]
        assert dispositions == (["requeued", "final"] if test == flaky else ["final"])
    assert outcome.status.failed == 0
    assert outcome.status.finalized == len(tests)
