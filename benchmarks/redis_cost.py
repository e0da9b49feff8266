"""What a test costs Redis: commands and round trips per test, from INFO commandstats.

Two measurements on a private redis-server, each after CONFIG RESETSTAT:

1. The hot path: one `QueueWorker` drains 2,000 tests (scripts loaded and the queue populated
   before the count), each acknowledged together with the next reserve, as a worker does.
   Round trips are counted on the worker's side (every command its client sends) and checked
   against the server's count of script calls (evalsha); the commands the scripts run inside
   Redis are the rest of commandstats.
2. A whole build: `ciqueue-gha run --workers 2` on a generated suite of 2,000 trivial tests
   against that server: populate, the heartbeat helpers, the supervisor's polls, the summary's
   reads, all of it, per test.

    python -m benchmarks.redis_cost [--tests N]

Target: one round trip per test on the hot path (reserve + acknowledge), not counting the
worker's first reserve and its release at the end. The upstream Python port of this design
makes five.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks.overhead import PYTEST_FLAGS, clean_environment, write_suite
from benchmarks.populate import node_ids
from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, CaseRecord, QueueWorker
from ciqueue_gha.redis_server import PrivateRedis
from tests.support.drain import drain_queue

TESTS = 2000
#: Round trips of a worker outside the per-test loop: its first reserve and its release.
OUTSIDE_LOOP = 2
UPSTREAM_ROUND_TRIPS = 5
#: Commands the measuring client itself sends; not the queue's.
ADMIN_COMMANDS = ("config|resetstat", "config", "info")


@dataclass(frozen=True)
class Cost:
    """Commands over one measurement, per test."""

    what: str
    tests: int
    round_trips: int | None  # counted on the worker's side; None: not counted
    calls: Counter[str]  # command -> calls, from commandstats
    usec: Counter[str]  # command -> microseconds Redis spent in it, from commandstats

    @property
    def script_calls(self) -> int:
        return self.calls["evalsha"] + self.calls["eval"]

    @property
    def inside_scripts(self) -> int:
        """Commands a script ran: every command but the script calls (the hot path sends
        nothing else, as `round_trips` checks)."""
        return sum(self.calls.values()) - self.script_calls

    def per_test(self, count: int) -> str:
        return f"{count / self.tests:>8.2f}"


class CountingWorker:
    """Counts the commands a worker sends, each one round trip (no pipelines here): on the
    connection its scripts go out on, and through its client (anything else, and the
    fallback of a script call)."""

    def __init__(self, worker: QueueWorker) -> None:
        self.sent: Counter[str] = Counter()
        client, connection = worker.client, worker.scripts.connection
        self._execute: Callable[..., Any] = client.execute_command
        self._send_packed: Callable[..., None] = connection.send_packed_command
        client.execute_command = self._count_command  # type: ignore[method-assign]
        connection.send_packed_command = self._count_packed

    def _count_command(self, *args: Any, **options: Any) -> Any:
        self.sent[str(args[0]).lower()] += 1
        return self._execute(*args, **options)

    def _count_packed(self, command: list[bytes], *args: Any) -> None:
        for packed in command:  # *<count>, $<length>, <command name>, ...
            self.sent[packed.split(b"\r\n", 3)[2].decode().lower()] += 1
        self._send_packed(command, *args)


def commandstats(admin: redis.Redis) -> tuple[Counter[str], Counter[str]]:
    """Calls and microseconds of each command since the last CONFIG RESETSTAT, less ours."""
    stats = admin.info("commandstats")
    calls = Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})
    usec = Counter({name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()})
    for name in ADMIN_COMMANDS:
        calls.pop(name, None)
        usec.pop(name, None)
    return calls, usec


def small_record(test: str) -> AttemptRecord:
    case = CaseRecord(nodeid=test, outcome="passed", duration=0.001, file="tests/x.py", line=1)
    return AttemptRecord(unit=test, outcome="passed", duration=0.001, cases=[case])


def hot_path(url: str, tests: int) -> tuple[Cost, Counter[str]]:
    """Drain `tests` tests with one worker; returns the cost and what the worker sent."""
    with closing(connect(url)) as admin, closing(connect(url)) as client:
        worker = QueueWorker(client, BuildKeys("redis-cost"), "worker-0")
        worker.scripts.load_all()
        worker.populate(node_ids(tests))
        counter = CountingWorker(worker)
        admin.config_resetstat()
        executed = drain_queue(worker, lambda lease: small_record(lease.unit))
        calls, usec = commandstats(admin)
    if executed != tests:
        raise SystemExit(f"redis_cost: the worker ran {executed} of {tests} tests")
    return Cost("hot path", tests, sum(counter.sent.values()), calls, usec), counter.sent


def whole_build(url: str, tests: int) -> Cost:
    """`ciqueue-gha run --workers 2` on a trivial suite against the server at `url`."""
    with (
        tempfile.TemporaryDirectory(prefix="ciq-redis-cost-") as tmp,
        closing(connect(url)) as admin,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite, tests)
        argv = [sys.executable, "-m", "ciqueue_gha.cli", "run", "--workers", "2"]
        argv += ["--redis-url", url, "--build-id", "redis-cost-build"]
        argv += ["--junit-xml", str(Path(tmp) / "junit.xml"), "--", *PYTEST_FLAGS, "."]
        admin.config_resetstat()
        done = subprocess.run(
            argv, cwd=suite, env=clean_environment(), capture_output=True, text=True, timeout=180
        )
        calls, usec = commandstats(admin)
    if done.returncode != 0:
        raise SystemExit(f"redis_cost: the build exited {done.returncode}:\n{done.stderr[-3000:]}")
    return Cost("whole build, run --workers 2", tests, None, calls, usec)


def report(hot: Cost, sent: Counter[str], build: Cost) -> int:
    print(f"{hot.tests:,} tests; per test:")
    print(
        f"{'measurement':<30} {'round trips':>11} {'scripts':>8} {'inside':>8} {'EXPIRE':>8} {'Redis µs':>8}"
    )
    for cost in (hot, build):
        trips = f"{cost.round_trips / cost.tests:>11.3f}" if cost.round_trips else f"{'-':>11}"
        print(
            f"{cost.what:<30} {trips} {cost.per_test(cost.script_calls)} "
            f"{cost.per_test(cost.inside_scripts)} {cost.per_test(cost.calls['expire'])}"
            f" {cost.per_test(sum(cost.usec.values()))}"
        )
    print("(scripts: script calls; inside: the commands those scripts ran in Redis)")
    top = ", ".join(f"{name} {n / hot.tests:.2f}" for name, n in hot.calls.most_common(8))
    print(f"hot path, inside scripts, per test: {top}")
    in_loop = (hot.round_trips or 0) - OUTSIDE_LOOP
    print(
        f"hot path: {in_loop / hot.tests:.3f} round trips per test for reserve + acknowledge "
        f"(+{OUTSIDE_LOOP} for the first reserve and the release); "
        f"the upstream port makes {UPSTREAM_ROUND_TRIPS}"
    )
    if set(sent) != {"evalsha"} or sent["evalsha"] != hot.script_calls:
        print(f"redis_cost: FAILED, the worker sent {dict(sent)}, Redis saw {hot.script_calls}")
        return 1
    if in_loop > hot.tests:
        print("redis_cost: FAILED, more than one round trip per test")
        return 1
    print("redis_cost: ok, one round trip per test")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=TESTS, help="tests in each measurement")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with PrivateRedis() as server:
        hot, sent = hot_path(server.url, args.tests)
        build = whole_build(server.url, args.tests)
    return report(hot, sent, build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
