"""Connections against a real redis-server that restarts under us: scripts come back after
the server forgets them (NOSCRIPT), a dropped connection is retried, the first contact fails
fast, and every key of a build carries a TTL."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from ciqueue_gha.connection import check_server, connect
from ciqueue_gha.errors import RedisTooOld, RedisUnreachable
from ciqueue_gha.protocol.keys import QUEUE_KEYS, BuildKeys
from ciqueue_gha.protocol.scripts import source
from ciqueue_gha.queue import AttemptRecord, Lease, QueueSettings, QueueWorker, Window
from tests.support.ports import reserve_port
from tests.support.redis_server import ControlledRedis

TESTS = ["t1", "t2", "t3"]
_builds = itertools.count(1)


@pytest.fixture
def durable_redis() -> Iterator[ControlledRedis]:
    """A server of our own (it gets restarted) that keeps its data across a restart."""
    with ControlledRedis(appendonly=True) as server:
        yield server


@pytest.fixture
def build() -> BuildKeys:
    return BuildKeys(f"conn-{next(_builds)}")


def sha(script: str) -> str:
    return hashlib.sha1(source(script).encode()).hexdigest()


def lease_of(reservation: object) -> Lease:
    assert isinstance(reservation, Lease), reservation
    return reservation


def test_scripts_are_loaded_again_after_a_restart(
    durable_redis: ControlledRedis, build: BuildKeys
) -> None:
    client = connect(durable_redis.url)
    worker = QueueWorker(client, build, "w1")
    assert worker.populate(TESTS).leader
    assert client.script_exists(sha("populate")) == [True]

    durable_redis.restart(empty=False)
    # Redis 7 forgets loaded scripts on a restart; Redis 6 replays SCRIPT LOAD from its
    # append-only file. Flush them, so both stand for a server that forgot them.
    client.script_flush()

    # The data survived (append-only file), the script cache did not.
    assert client.llen(build.key("queue")) == 3
    assert client.script_exists(sha("populate"), sha("reserve")) == [False, False]
    lease = lease_of(worker.reserve())
    assert lease.unit == "t1"
    assert client.script_exists(sha("reserve")) == [True]
    disposition, _ = worker.acknowledge(lease, AttemptRecord("t1", "passed"), reserve_next=False)
    assert disposition == "final"


def test_a_connection_dropped_between_calls_is_retried(
    durable_redis: ControlledRedis, build: BuildKeys
) -> None:
    client = connect(durable_redis.url)
    check_server(client, durable_redis.url)
    worker = QueueWorker(client, build, "w1")
    worker.populate(TESTS)
    lease = lease_of(worker.reserve())

    durable_redis.restart(empty=False)  # the client's socket is dead now

    assert worker.heartbeat(lease)
    disposition, following = worker.acknowledge(lease, AttemptRecord(lease.unit, "passed"))
    assert disposition == "final"
    assert lease_of(following).unit == "t2"


def test_an_acknowledge_that_cannot_be_sent_is_made_at_once_not_when_its_reply_is_read(
    durable_redis: ControlledRedis, build: BuildKeys
) -> None:
    """A worker sends its acknowledge and runs its next test before reading the reply: if the
    send fails, the call goes through redis-py's retries right away, so the test's lease is not
    left unacknowledged while the next test runs."""
    client = connect(durable_redis.url)
    worker = QueueWorker(client, build, "w1")
    worker.populate(TESTS)
    first, second = lease_of(worker.reserve()), lease_of(worker.reserve())
    socket = worker.scripts.connection._sock
    assert socket is not None
    socket.close()  # the send fails at once (EBADF)

    finishing = worker.acknowledge_later(first, AttemptRecord(first.unit, "passed"))
    # Done before anyone asks for the reply: finalized, and the last test reserved.
    assert client.hget(build.key("results"), "t1") == str(first.id)
    assert client.llen(build.key("queue")) == 0
    assert finishing.result() == (["final"], Window((Lease("t3", second.id + 1),)))


def test_a_call_rides_out_a_server_that_is_down_for_seconds(
    durable_redis: ControlledRedis, build: BuildKeys
) -> None:
    """The first contact retries briefly; the calls after it keep the long retries."""
    client = connect(durable_redis.url)
    check_server(client, durable_redis.url)  # swaps in the first-contact retry, then back
    worker = QueueWorker(client, build, "w1")
    worker.populate(TESTS)
    down_for = 3.0  # beyond the first contact's 1.5 s of retries, within the 5 s budget after

    durable_redis.kill()
    restarter = threading.Timer(down_for, durable_redis.start)
    started = time.monotonic()
    restarter.start()
    try:
        lease = lease_of(worker.reserve())
    finally:
        restarter.join()
    assert time.monotonic() - started >= down_for
    assert lease.unit == "t1"


def test_first_contact_fails_fast() -> None:
    url = f"redis://127.0.0.1:{reserve_port()}/0"
    client = connect(url)
    kept = client.get_retry()
    started = time.monotonic()
    with pytest.raises(RedisUnreachable, match="cannot reach Redis"):
        check_server(client, url)
    assert time.monotonic() - started < 4.0
    # What comes after has the client's own, long retries again (a server down for longer
    # than the first contact's backoff is ridden out: see the test above).
    assert client.get_retry() is kept


def test_a_server_older_than_the_scripts_need_is_refused(redis_url: str) -> None:
    client = connect(redis_url)
    assert check_server(client, redis_url, min_version=(6, 0)) >= (6, 0)
    with pytest.raises(RedisTooOld, match=r"too old: ciqueue-gha needs Redis >= 99\.0"):
        check_server(client, redis_url, min_version=(99, 0))


def test_every_key_of_a_build_has_a_ttl(client: redis.Redis, keys: BuildKeys) -> None:
    """Populate, reserve, heartbeat, requeue, acknowledge (current and stale), release and
    a takeover: after each, every key under the build's prefix expires."""
    ttl = 600
    settings = QueueSettings(max_requeues=1, requeue_tolerance=1.0, key_ttl=ttl)
    a = QueueWorker(client, keys, "a", settings)
    b = QueueWorker(client, keys, "b", settings)
    seen: set[str] = set()

    def every_key_expires() -> None:
        found = list(client.scan_iter(match=keys.prefix.replace("[", "\\[") + "*"))
        assert found
        for key in found:
            assert 0 < client.ttl(key) <= ttl, f"{key} has TTL {client.ttl(key)}"
        seen.update(key.removeprefix(keys.prefix) for key in found)

    assert a.populate(TESTS).leader
    every_key_expires()
    first = lease_of(a.reserve())
    assert a.heartbeat(first)
    every_key_expires()
    disposition, second = a.requeue(first, AttemptRecord(first.unit, "failed"))
    assert disposition == "requeued"
    every_key_expires()
    disposition, third = a.acknowledge(lease_of(second), AttemptRecord(TESTS[1], "failed"))
    assert disposition == "final"
    every_key_expires()
    assert a.release() == [lease_of(third).unit]  # a's lease expires at once
    every_key_expires()
    taken = lease_of(b.reserve())  # b takes the released test over
    assert taken.unit == lease_of(third).unit
    stale, _ = a.acknowledge(
        lease_of(third), AttemptRecord(taken.unit, "passed"), reserve_next=False
    )
    assert stale == "stale"
    every_key_expires()
    assert b.heartbeat(taken)
    _, last = b.acknowledge(taken, AttemptRecord(taken.unit, "passed"))
    _, done = b.acknowledge(lease_of(last), AttemptRecord(lease_of(last).unit, "passed"))
    assert done is not None and not isinstance(done, Lease)
    every_key_expires()

    # basis: populate writes it, beside the key vector; claims: claim.lua, which these workers
    # do not call (test_claim checks its TTL).
    written = {*QUEUE_KEYS, "basis"} - {"claims"}
    assert seen == written, f"never written: {sorted(written - seen)}"
