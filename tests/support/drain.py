"""A worker that drains the queue with no pytest: what queue-level tests and benchmarks run.

Each unit is executed, then acknowledged (or requeued, when it failed and requeues are
allowed) together with the next reserve: the round trips the plugin makes, without its
reserve-ahead policy.
"""

from __future__ import annotations

from collections.abc import Callable

from ciqueue_gha.queue.record import AttemptRecord
from ciqueue_gha.queue.worker import Lease, QueueWorker, Reservation


def drain_queue(worker: QueueWorker, execute: Callable[[Lease], AttemptRecord]) -> int:
    """Run units until the queue has none left for `worker`; returns how many it executed."""
    executed = 0
    reply: Reservation | None = worker.reserve()
    try:
        while reply is not None and (lease := worker.wait_for_lease(reply)):
            record = execute(lease)
            executed += 1
            finish = worker.requeue if record.failed and worker.may_requeue else worker.acknowledge
            _, reply = finish(lease, record)
    finally:
        worker.release()
    return executed
