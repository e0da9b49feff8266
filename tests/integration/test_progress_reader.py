"""A running build's progress as the summary reads it (queue/progress.py), on a real Redis:
what is done and left, the workers holding leases, and each failure read exactly once."""

from __future__ import annotations

import redis

from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.progress import ProgressReader
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.queue.supervisor import Supervisor
from ciqueue_gha.queue.worker import Lease, QueueWorker

DURATIONS = {"t::a": 40.0, "t::b": 30.0, "t::c": 20.0, "t::d": 10.0}


def lease(worker: QueueWorker) -> Lease:
    reply = worker.reserve()
    assert isinstance(reply, Lease), reply
    return reply


def record(held: Lease, outcome: str) -> AttemptRecord:
    case = CaseRecord(held.unit, outcome, 1.0, file="t.py", line=3)
    return AttemptRecord(held.unit, outcome, "w", held.id, 1.0, cases=[case])


def test_the_reader_counts_what_is_left_and_reads_each_failure_once(
    client: redis.Redis, keys: BuildKeys
) -> None:
    a, b = QueueWorker(client, keys, "A"), QueueWorker(client, keys, "B")
    a.populate(list(DURATIONS))
    supervisor = Supervisor(client, keys)
    reader = ProgressReader(client, keys, DURATIONS, clock=iter([0.0, 10.0, 20.0]).__next__)

    first = reader.look(supervisor.status())
    assert (first.done, first.failed, first.left_seconds, first.new_failures) == (0, 0, 100, [])

    failing, passing = lease(a), lease(b)
    a.acknowledge(failing, record(failing, "failed"), reserve_next=False)
    b.acknowledge(passing, record(passing, "passed"), reserve_next=False)
    lease(a)  # one worker holds a lease now
    second = reader.look(supervisor.status())
    assert (second.done, second.failed, second.workers) == (2, 1, 1)
    assert second.left_seconds == 30  # c and d: 20 + 10
    assert second.eta == 30 and second.rate == 0.2
    assert [r.unit for r in second.new_failures] == ["t::a"]

    third = reader.look(supervisor.status())
    assert third.new_failures == [] and third.failed == 1  # read once
