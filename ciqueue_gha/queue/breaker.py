"""The circuit breaker's side of the queue: a worker's streak of failed units given back
(trip.lua), and what the summary reads of the workers that stopped.

A worker that fails `--max-consecutive-failures` units in a row is probably broken itself (a
runner whose database or network is gone), not its tests: it stops taking work, and the units
of its streak go back to the head of the queue for the others, charged to no requeue cap and
with no attempt recorded, so each unit's outcome is what a healthy worker sees. The policy
that decides when (holding the streak's leases unacknowledged meanwhile) is the plugin's
(plugin/breaker.py); this module is its one way into Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from ..protocol.keys import BREAKER_KEYS, BuildKeys
from ..truncate import ROW_MESSAGE_LIMIT, fit_chars
from .record import AttemptRecord
from .worker import Lease, QueueWorker

#: trip.lua's replies: the streak went back to the queue; or the last live worker's trip
#: finalized it as failures and stopped the build.
GIVEN_BACK, FINALIZED = "given back", "finalized"

#: The stopped key's value when the last live worker tripped (--max-failures writes a worker id).
BREAKER_STOP = "breaker"


@dataclass(frozen=True)
class StoppedWorker:
    """A worker whose breaker tripped: its `units` failed in a row, the first with
    `first_error`; `last`: no other live worker, so they became its final failures."""

    worker: str
    first_error: str
    units: int
    last: bool = False


def first_error(record: AttemptRecord) -> str:
    """The first line of the first failure in `record`, cut to one report row."""
    failing = next((case for case in record.cases if case.failed), None)
    words = (failing.message or failing.longrepr) if failing else record.longrepr
    line = next((line.strip() for line in words.splitlines() if line.strip()), record.outcome)
    return fit_chars(line, ROW_MESSAGE_LIMIT)


def trip(
    worker: QueueWorker, streak: Sequence[tuple[Lease, AttemptRecord]], unrun: Sequence[Lease] = ()
) -> str:
    """Give `streak` (its leases held, unacknowledged) back to the queue and mark `worker`
    stopped: GIVEN_BACK; or FINALIZED, when it is the last live worker. The `unrun` leases
    (leased, never started) go back to the queue after the streak, as they are."""
    keys, settings = worker.keys, worker.settings
    note = {"first_error": first_error(streak[0][1]), "units": len(streak)}
    args: list[object] = [
        worker.worker_id,
        settings.key_ttl,
        settings.lease_timeout_ms,
        json.dumps(note),
    ]
    for lease, record in streak:
        record.unit, record.lease, record.worker = lease.unit, lease.id, worker.worker_id
        args += [lease.unit, lease.id, record.outcome, record.to_json()]
    for lease in unrun:
        args += [lease.unit, lease.id, "", ""]
    extra = [keys.key(name) for name in BREAKER_KEYS]
    reply = worker.scripts.call("trip", [*keys.queue_keys(), *extra], args)
    return str(reply[0])


def given_back_by_another(worker: QueueWorker, unit: str) -> bool:
    """Whether another worker's streak gave `unit` back: failing here too, it does not count
    toward this worker's breaker (plugin/breaker.py)."""
    gave = worker.client.hget(worker.keys.key("given-back"), unit)
    return gave is not None and gave != worker.worker_id


def failed_so_far(worker: QueueWorker) -> int:
    """Units finalized as failed in the build so far (what --max-failures counts)."""
    return int(worker.client.get(worker.keys.key("failed")) or 0)


def stopped_workers(client: redis.Redis, keys: BuildKeys) -> list[StoppedWorker]:
    """The workers of this attempt whose breaker tripped, by id."""
    notes = client.hgetall(keys.key("tripped"))
    stopped = []
    for worker, text in sorted(notes.items()):
        note = json.loads(text)
        error, units = str(note["first_error"]), int(note["units"])
        stopped.append(StoppedWorker(str(worker), error, units, bool(note.get("last"))))
    return stopped


def tripped_stop(client: redis.Redis, keys: BuildKeys) -> bool:
    """Whether the build stopped because its last live worker tripped (not --max-failures)."""
    return client.get(keys.key("stopped")) == BREAKER_STOP
