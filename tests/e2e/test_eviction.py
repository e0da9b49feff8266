"""Real eviction (issue 10, finding 2): a redis-server with a small `maxmemory` and
`allkeys-lru` evicts whatever it likes of a 20,000-test build, over 10 seeded runs.

The build is driven through the real scripts by a light driver in this process (pipelined
reserve and acknowledge calls, as a fleet of workers would make them; a Redis error ends it,
as it ends a worker), then the real `ciqueue-gha summary` reports. Whatever was evicted, the
summary never exits 0 (or 1, "every test ran") with fewer tests than were queued, and never
shows a traceback.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ciqueue_gha import defaults
from ciqueue_gha.connection import connect
from ciqueue_gha.errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INFRASTRUCTURE,
    EXIT_PASSED,
    CiqueueError,
)
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.protocol.scripts import Scripts
from ciqueue_gha.queue.collection import record_collection
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.queue.worker import QueueWorker
from tests.support.redis_server import ControlledRedis

from .test_runner import SUITES, clean_env, cli

TESTS = 20_000
SEEDS = range(1, 11)
MAXMEMORY_MB = (8, 17)
FAILING = 0.01
BATCH = 1000  # calls per pipeline: a fleet's worth of workers at once
LEASE_MS = 60_000


@pytest.fixture(scope="module")
def evicting() -> Iterator[ControlledRedis]:
    with ControlledRedis() as server:
        yield server


def drive(client: redis.Redis, keys: BuildKeys, rng: random.Random) -> str:
    """Populate and run the build until it is done or Redis refuses (evicted state, out of
    memory); returns how it ended."""
    tests = [f"tests/test_mod{n // 100}.py::test_case[{n}]" for n in range(TESTS)]
    try:
        record_collection(client, keys, "populator", [], interrupted=False)  # as a worker does
        QueueWorker(client, keys, "populator").populate(tests)
    except (redis.RedisError, CiqueueError) as exc:  # out of memory, state lost: a worker ends
        return f"populate: {type(exc).__name__}"
    scripts = Scripts(client)
    scripts.load_all()
    vector, ttl = keys.queue_keys(), defaults.KEY_TTL
    seqs = iter(range(1, 10 * TESTS))
    # One lease a call (a window of one): reserve's ARGV is worker, seq, lease timeout, max
    # failures, ttl, count, leases held besides; acknowledge's: worker, ttl, lease timeout,
    # max failures, reserve seq, reserve count, requeue caps (none) and offset, leases held
    # besides, then unit, lease, outcome, record, requeue flag.
    first = [["fleet", next(seqs), LEASE_MS, -1, ttl, 1, 0] for _ in range(BATCH)]
    replies = pipelined(scripts, "reserve", vector, first)
    while True:
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            return f"script: {str(errors[0])[:60]}"
        # A reserve's reply, or an acknowledge's: its disposition, then the next reservation
        # ('lease', Redis's time, unit, lease id).
        leases = [r[r.index("lease") + 2 :][:2] for r in replies if "lease" in r]
        if not leases:
            return "done"
        calls = []
        for test, lease in leases:
            outcome = "failed" if rng.random() < FAILING else "passed"
            case = CaseRecord(test, outcome, 0.01, file=test.split("::")[0], line=3)
            record = AttemptRecord(test, outcome, "fleet", int(lease), 0.01, cases=[case])
            head = ["fleet", ttl, LEASE_MS, -1, next(seqs), 1, 0, 0, 0, 0]
            calls.append([*head, test, lease, outcome, record.to_json(), "0"])
        replies = pipelined(scripts, "acknowledge", vector, calls)


def pipelined(scripts: Scripts, name: str, vector: list[str], calls: list[list[Any]]) -> list[Any]:
    """Every call of script `name` sent at once on the scripts' connection, then every reply
    read (an error reply as its exception): a fleet of workers' calls, cheaply."""
    connection = scripts.connection
    connection.send_packed_command([b"".join(scripts.packed(name, vector, c) for c in calls)])
    replies: list[Any] = []
    for _ in calls:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def summary(
    server: ControlledRedis, keys: BuildKeys, tmp: Path
) -> subprocess.CompletedProcess[str]:
    argv = [*cli(), "summary", "--redis-url", server.url, "--build-id", keys.build_id]
    argv += ["--junit-xml", str(tmp / f"{keys.build_id}.xml"), "--queue-init-timeout", "0.5"]
    argv += ["--inactive-workers-timeout", "0.5"]
    return subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(tmp), cwd=tmp, timeout=120
    )


def reported_tests(stdout: str) -> int | None:
    found = re.search(r"attempt 1: (\d+) tests, ", stdout)
    return int(found.group(1)) if found else None


@pytest.mark.slow
def test_eviction_never_gives_a_green_build_with_fewer_tests(
    evicting: ControlledRedis, tmp_path: Path
) -> None:
    client = connect(evicting.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    ends: Counter[tuple[str, int]] = Counter()
    evicted_runs = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        client.flushall()
        client.config_set("maxmemory", f"{rng.randint(*MAXMEMORY_MB)}mb")
        client.config_resetstat()
        keys = BuildKeys(f"evict-{seed}")
        ended = drive(client, keys, rng)
        done = summary(evicting, keys, tmp_path)
        shown = f"seed {seed}, driver {ended}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stdout + done.stderr, shown
        assert done.returncode in (EXIT_PASSED, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INFRASTRUCTURE)
        if done.returncode in (EXIT_PASSED, EXIT_FAILED):  # "every test ran"
            assert reported_tests(done.stdout) == TESTS, shown
        if done.returncode == EXIT_INFRASTRUCTURE:
            assert len([ln for ln in done.stderr.splitlines() if "WARNING" not in ln]) == 1, shown
        # The first contact warned that this server may evict the queue's keys.
        assert "maxmemory-policy allkeys-lru" in done.stderr, shown
        evicted_runs += int(client.info("stats")["evicted_keys"]) > 0
        ends[(ended.split(":")[0], done.returncode)] += 1
    print(f"eviction runs (driver end, summary exit): {dict(ends)}; {evicted_runs} evicted")
    assert evicted_runs >= 3, f"too few runs evicted anything to test: {dict(ends)}"


# --- the warning at first contact -------------------------------------------------------------


def first_contact(url: str, tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *argv, "--redis-url", url],
        capture_output=True,
        text=True,
        env=clean_env(tmp),
        cwd=SUITES / "empty",
        timeout=60,
    )


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_redis_check_warns_of_a_policy_that_can_evict_the_queue(
    policy: str, evicting: ControlledRedis, tmp_path: Path
) -> None:
    """Every key of a build has a TTL: volatile-* evict them as readily as allkeys-*."""
    connect(evicting.url).config_set("maxmemory-policy", policy)
    done = first_contact(evicting.url, tmp_path, "redis", "check")
    assert done.returncode == 0, done.stderr
    warning = f"ciqueue-gha: WARNING: Redis at {evicting.url} has maxmemory-policy {policy}: "
    assert done.stderr.startswith(warning) and done.stderr.count("\n") == 1, done.stderr
    assert "use maxmemory-policy noeviction" in done.stderr


def test_a_worker_warns_at_first_contact(evicting: ControlledRedis, tmp_path: Path) -> None:
    connect(evicting.url).config_set("maxmemory-policy", "allkeys-lru")
    done = first_contact(evicting.url, tmp_path, "worker", "--build-id", "warned")
    assert "has maxmemory-policy allkeys-lru" in done.stderr, done.stderr


def test_noeviction_is_not_warned_about(redis_url: str, tmp_path: Path) -> None:
    done = first_contact(redis_url, tmp_path, "redis", "check")
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr
