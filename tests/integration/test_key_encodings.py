"""The keys every call rewrites are hash tables (skiplists), never listpacks, however few
entries they hold (`widen` in _prelude.lua): a listpack is searched end to end at each access.
And the wide entry that makes them so never outlives the call that created the key."""

from __future__ import annotations

import redis

from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, QueueWorker, Window

UNITS = [f"t{n}" for n in range(8)]
#: Listpacks (ziplists before Redis 7): what these keys must never be.
SEARCHED = {"listpack", "ziplist"}


def encoding(client: redis.Redis, keys: BuildKeys, name: str) -> str:
    return str(client.object("encoding", keys.key(name)))


def window(worker: QueueWorker, count: int) -> Window:
    grant = worker.reserve_window(count)
    assert isinstance(grant, Window)
    return grant


def test_leases_running_and_results_are_hash_tables_from_their_first_write(
    client: redis.Redis, keys: BuildKeys
) -> None:
    worker = QueueWorker(client, keys, "w1")
    worker.populate(UNITS)
    for _ in range(2):  # the keys are deleted once empty, and made hash tables again
        held = window(worker, 4)
        units = sorted(lease.unit for lease in held.leases)
        assert encoding(client, keys, "leases") not in SEARCHED
        assert encoding(client, keys, "running") not in SEARCHED
        assert sorted(client.hkeys(keys.key("leases"))) == units  # no wide entry left
        assert sorted(client.zrange(keys.key("running"), 0, -1)) == units
        done = [(lease, AttemptRecord(lease.unit, "passed")) for lease in held.leases]
        assert worker.settle(done, 0).result()[0] == ["final"] * 4
        assert not client.exists(keys.key("leases"), keys.key("running"))
        assert encoding(client, keys, "results") not in SEARCHED
    assert sorted(client.hkeys(keys.key("results"))) == UNITS
