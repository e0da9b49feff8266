"""The end of a build wakes its supervisor: the script that finalizes the last test pushes
once to the build's `ended` list, which the supervisor blocks on between its looks (so it
may look seldom and still see the end at once)."""

from __future__ import annotations

import time

import redis

from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, QueueWorker
from ciqueue_gha.queue.supervisor import Supervisor, Verdict

UNITS = ["t1", "t2"]


def passed(unit: str) -> AttemptRecord:
    return AttemptRecord(unit=unit, outcome="passed")


def test_only_the_last_finalized_test_ends_the_build(client: redis.Redis, keys: BuildKeys) -> None:
    worker = QueueWorker(client, keys, "w1")
    worker.populate(UNITS)
    first = worker.wait_for_lease(worker.reserve())
    assert first is not None
    _, reply = worker.acknowledge(first, passed(first.unit))
    assert client.exists(keys.key("ended")) == 0
    second = worker.wait_for_lease(reply)
    assert second is not None
    worker.acknowledge(second, passed(second.unit))
    assert client.lrange(keys.key("ended"), 0, -1) == ["1"]
    assert client.ttl(keys.key("ended")) > 0  # every key of a build has a TTL
    worker.acknowledge(second, passed(second.unit))  # a retried call: nothing more
    assert client.llen(keys.key("ended")) == 1


def test_the_supervisor_waiting_between_looks_wakes_at_the_end(
    client: redis.Redis, keys: BuildKeys
) -> None:
    worker = QueueWorker(client, keys, "w1")
    worker.populate(UNITS[:1])
    lease = worker.wait_for_lease(worker.reserve())
    assert lease is not None
    supervisor = Supervisor(client, keys)
    worker.acknowledge(lease, passed(lease.unit))
    started = time.monotonic()
    supervisor._until_ended(30.0)  # the end is there already: no wait
    assert time.monotonic() - started < 10.0
    assert supervisor.wait().verdict is Verdict.EXHAUSTED
    assert client.llen(keys.key("ended")) == 1  # left for any other summary
