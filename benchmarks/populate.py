"""Populating 100,000 tests takes under 2 s: measured, and a non-zero exit when it does not.

Starts a private redis-server, populates it through `QueueWorker.populate` with realistic
pytest node ids (60 to 100 characters) as a build's first worker does (scripts not yet
loaded on the server: "cold"), then as a follower, then drains a subset with acknowledge + next
reserve in one round trip. Prints one row per step:

    python -m benchmarks.populate [--tests N] [--limit S] [--drain N]

Only the leader's populate has a target (`--limit`); the other rows are figures to watch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TypeVar

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, Lease, Population, QueueWorker, Reservation
from ciqueue_gha.redis_server import PrivateRedis

TESTS = 100_000
LIMIT_SECONDS = 2.0
DRAIN = 5_000

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    step: str
    tests: int
    seconds: float

    def line(self) -> str:
        rate = self.tests / self.seconds if self.seconds > 0 else float("inf")
        return f"{self.step:<28} {self.tests:>8} {self.seconds:>9.3f} {rate:>12,.0f}"


HEADER = f"{'step':<28} {'tests':>8} {'seconds':>9} {'tests/s':>12}"


def node_ids(count: int) -> list[str]:
    """Distinct pytest node ids shaped like a large suite's: packages, classes, parameters."""
    areas = ("billing", "accounts", "search", "notifications", "storage", "scheduler")
    return [
        f"tests/{areas[i % len(areas)]}/test_{areas[i // 7 % len(areas)]}_{i // 40:05d}.py"
        f"::TestScenario{i // 8 % 50:02d}::test_case_{i:06d}[v{i % 5}]"
        for i in range(count)
    ]


def timed(step: str, tests: int, action: Callable[[], T]) -> tuple[Row, T]:
    start = time.perf_counter()
    result = action()
    return Row(step, tests, time.perf_counter() - start), result


def drain(worker: QueueWorker, count: int) -> None:
    """Run `count` tests the way `QueueWorker.run` does: acknowledge with the next reserve."""
    reservation: Reservation | None = worker.reserve()
    for done in range(1, count + 1):
        if not isinstance(reservation, Lease):
            raise SystemExit(f"populate: expected a lease, got {reservation!r}")
        record = AttemptRecord(unit=reservation.unit, outcome="passed")
        _, reservation = worker.acknowledge(reservation, record, reserve_next=done < count)


def measure(url: str, tests: list[str], drain_count: int) -> list[Row]:
    keys = BuildKeys("benchmark-populate")
    with closing(connect(url)) as leader_client, closing(connect(url)) as follower_client:
        leader = QueueWorker(leader_client, keys, "leader")
        follower = QueueWorker(follower_client, keys, "follower")
        first, led = timed("populate, leader (cold)", len(tests), lambda: leader.populate(tests))
        second, followed = timed("populate, follower", len(tests), lambda: follower.populate(tests))
        check_populated(led, followed, leader_client.llen(keys.key("queue")), len(tests))
        rows = [first, second]
        if drain_count:
            row, _ = timed(
                "drain, ack + next reserve", drain_count, lambda: drain(leader, drain_count)
            )
            rows.append(row)
    return rows


def check_populated(led: Population, followed: Population, queued: int, expected: int) -> None:
    """Fail loudly if the populate measured did not do its job."""
    if not (led.leader and not followed.leader and followed.matches):
        raise SystemExit(f"populate: wrong roles: leader {led}, follower {followed}")
    if queued != expected or led.total != expected or followed.total != expected:
        raise SystemExit(
            f"populate: {queued} queued, totals {led.total}/{followed.total}, expected {expected}"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=TESTS, help="tests to populate")
    parser.add_argument("--limit", type=float, default=LIMIT_SECONDS, help="target, seconds")
    parser.add_argument("--drain", type=int, default=DRAIN, help="tests to drain after (0: none)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    tests = node_ids(args.tests)
    lengths = sorted(len(test) for test in tests)
    with PrivateRedis() as server:
        rows = measure(server.url, tests, min(args.drain, args.tests))
    print(f"test ids: {lengths[0]} to {lengths[-1]} characters")
    print(HEADER)
    print("\n".join(row.line() for row in rows))
    if rows[0].seconds > args.limit:
        print(f"populate: FAILED, {rows[0].seconds:.3f} s is over the {args.limit:g} s target")
        return 1
    print(f"populate: ok, under the {args.limit:g} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
