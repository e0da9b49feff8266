"""How many tests one Redis can finalize: 64 concurrent simulated workers, one private Redis.

Each simulated worker is an async client (redis.asyncio) that calls the queue's real scripts
exactly as the plugin's lease window does, with zero-length units: one reserve grants a
window of `WINDOW` leases; once half of it is run, one acknowledge settles those attempts
and reserves what the window lacks, and the worker runs the rest of its window meanwhile
(the reply is awaited only when the window is empty). Side by side, the same workers with
one lease a call (acknowledge + the next reserve of one unit, as before lease windows).

Prints finalized tests/s (bounded here by this machine's Python clients, on the same two
cores) and Redis's time per test two ways: the scripts' own time (INFO commandstats, the
clients send nothing else, so nothing is counted twice), the issue's measure, which the
target is checked on; and beside it the main thread's CPU time (INFO cpu: the network and
the server's cron too), which grows when 64 Python clients share the two cores with it;
capacity = 1e6 / µs per test.

    python -m benchmarks.throughput [--workers N] [--tests N]

Target: at least `TARGET_CAPACITY` tests/s of Redis capacity with windows, by the scripts'
time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from benchmarks.populate import node_ids
from benchmarks.redis_cost import server_cpu, small_record
from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.protocol.scripts import source
from ciqueue_gha.queue import QueueSettings, QueueWorker

WORKERS = 64
TESTS = 40_000
#: The simulated workers' window: the plugin's cap (zero-length units always reach it).
WINDOW = 32
TARGET_CAPACITY = 40_000


@dataclass(frozen=True)
class Run:
    what: str
    tests: int
    seconds: float
    cpu: float  # Redis main-thread CPU seconds
    scripts: float  # microseconds Redis spent running the scripts (commandstats)

    @property
    def usec_per_test(self) -> float:
        return self.scripts / self.tests

    @property
    def cpu_per_test(self) -> float:
        return self.cpu * 1e6 / self.tests

    @property
    def capacity(self) -> float:
        return 1e6 / self.usec_per_test


class SimulatedWorker:
    """One worker of the build on its own async connection, calling the real scripts."""

    def __init__(self, client: aioredis.Redis, keys: BuildKeys, name: str, window: int) -> None:
        self.client = client
        self.keys = keys.queue_keys()
        self.name = name
        self.window = window
        self.settings = QueueSettings()
        self.seq = 0
        self.ran = 0
        self.reserve_sha = ""
        self.ack_sha = ""

    async def load(self) -> None:
        self.reserve_sha = await self.client.script_load(source("reserve"))
        self.ack_sha = await self.client.script_load(source("acknowledge"))

    async def _reserve(self, count: int) -> list[Any]:
        self.seq += 1
        s = self.settings
        args: list[Any] = [self.name, self.seq, s.lease_timeout_ms, -1, s.key_ttl, count, 0]
        return list(await self.client.evalsha(self.reserve_sha, len(self.keys), *self.keys, *args))

    async def _settle(self, done: list[tuple[str, str]], count: int) -> list[Any]:
        self.seq += 1
        s = self.settings
        args: list[Any] = [
            self.name,
            s.key_ttl,
            s.lease_timeout_ms,
            -1,
            self.seq,
            count,
            0,
            0,
            2,
            0,
        ]
        for unit, lease in done:
            args += [unit, lease, "passed", small_record(unit).to_json(), "0"]
        reply = await self.client.evalsha(self.ack_sha, len(self.keys), *self.keys, *args)
        return list(reply)[len(done) :]

    async def run(self) -> None:
        """Run zero-length units until the queue is exhausted, the plugin's way."""
        held: deque[tuple[str, str]] = deque()
        done: list[tuple[str, str]] = []
        pending: asyncio.Task[list[Any]] | None = None
        reply: list[Any] | None = await self._reserve(self.window)
        while True:
            if reply is not None:
                if reply[0] == "lease":
                    held.extend(zip(reply[2::2], reply[3::2], strict=True))
                elif not held and reply[0] == "exhausted":
                    return
                elif not held:  # a wait: others hold the last units
                    await asyncio.sleep(0.005)
                reply = None
            if not held:
                if pending is not None:
                    reply, pending = await pending, None
                else:
                    reply, done = await self._settle(done, self.window), []
                continue
            done.append(held.popleft())  # a zero-length unit ran
            self.ran += 1
            if pending is None and len(held) <= self.window // 2:
                want = self.window - len(held)
                pending, done = asyncio.ensure_future(self._settle(done, want)), []
            elif pending is not None and pending.done():
                reply, pending = pending.result(), None


async def drain(url: str, keys: BuildKeys, workers: int, window: int) -> int:
    clients = [aioredis.from_url(url, decode_responses=True) for _ in range(workers)]
    sims = [SimulatedWorker(c, keys, f"sim-{n}", window) for n, c in enumerate(clients)]
    try:
        for sim in sims:
            await sim.load()
        await asyncio.gather(*(sim.run() for sim in sims))
    finally:
        for client in clients:
            await client.aclose()
    return sum(sim.ran for sim in sims)


def measure(url: str, what: str, workers: int, tests: int, window: int) -> Run:
    keys = BuildKeys(f"throughput-{window}")
    with connect(url) as client:
        QueueWorker(client, keys, "populate").populate(node_ids(tests))
        cpu, scripts = server_cpu(client), script_usec(client)
        started = time.perf_counter()
        ran = asyncio.run(drain(url, keys, workers, window))
        seconds = time.perf_counter() - started
        cpu, scripts = server_cpu(client) - cpu, script_usec(client) - scripts
        finalized = int(client.hlen(keys.key("results")))
    if ran != tests or finalized != tests:
        raise SystemExit(f"throughput: ran {ran}, finalized {finalized} of {tests} tests")
    return Run(what, tests, seconds, cpu, scripts)


def script_usec(admin: redis.Redis) -> float:
    """Microseconds Redis has spent in script calls (their inner commands included)."""
    stats = admin.info("commandstats")
    return float(sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in ("evalsha", "eval")))


def report(runs: list[Run]) -> int:
    head = ("tests/s", "scripts µs", "capacity/s", "CPU µs", "by CPU/s")
    print(f"{'':<20} " + " ".join(f"{h:>11}" for h in head) + "   (a test)")
    for run in runs:
        print(
            f"{run.what:<20} {run.tests / run.seconds:>11,.0f} {run.usec_per_test:>11.1f} "
            f"{run.capacity:>11,.0f} {run.cpu_per_test:>11.1f} {1e6 / run.cpu_per_test:>11,.0f}"
        )
    k1, windows = runs
    print(f"windows: {k1.usec_per_test / windows.usec_per_test:.1f}x less Redis time a test")
    if windows.capacity < TARGET_CAPACITY:
        print(f"throughput: FAILED, Redis capacity below {TARGET_CAPACITY:,} tests/s")
        return 1
    print(f"throughput: ok, Redis capacity at least {TARGET_CAPACITY:,} tests/s")
    return 0


def main(argv: list[str]) -> int:
    from ciqueue_gha.redis_server import PrivateRedis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--tests", type=int, default=TESTS)
    args = parser.parse_args(argv)
    with PrivateRedis() as server:
        k1 = measure(server.url, "one lease a call", args.workers, args.tests // 4, 1)
        windows = measure(server.url, f"windows of {WINDOW}", args.workers, args.tests, WINDOW)
    return report([k1, windows])


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except redis.RedisError as exc:
        sys.exit(f"throughput: {exc}")
