"""How soon the summary knows: from the last acknowledge to `ciqueue-gha summary` exiting.

Each round starts a private redis-server's worth of state for a fresh build, a real
`ciqueue-gha summary` process (as a summary job runs it, waiting for the queue), and one
`QueueWorker` in this process that populates the build and finalizes every test. Before the
last acknowledge it waits a random fraction of the supervisor's poll interval, so the rounds
sample every phase of the poll (the end wakes the supervisor between its looks, so the phase
should not matter); then it stamps the acknowledge and waits for the summary to exit. The
latency covers the supervisor noticing exhaustion, loading the build record, merging it into
JUnit, writing the text summary, and the process's exit.

    python -m benchmarks.latency [--tests N] [--rounds R] [--limit S]

Target: the median round under `--limit` (1.5 s); the slowest round is printed beside it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import redis

from benchmarks.overhead import clean_environment
from benchmarks.populate import node_ids
from benchmarks.redis_cost import small_record
from ciqueue_gha import defaults
from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import Lease, QueueWorker, Reservation
from ciqueue_gha.queue.collection import record_collection
from ciqueue_gha.redis_server import PrivateRedis

TESTS = 500
ROUNDS = 7
LIMIT_SECONDS = 1.5
#: A summary that has not exited this long after the last acknowledge is broken, not slow.
EXIT_TIMEOUT = 60.0


def summary_process(url: str, build: str, junit: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "ciqueue_gha.cli", "summary", "--build-id", build]
    argv += ["--junit-xml", str(junit)]
    env = {**clean_environment(), "CIQUEUE_REDIS_URL": url}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_watching(client: redis.Redis, alone: int, summary: subprocess.Popen[bytes]) -> None:
    """Until the summary has connected and polled a while: its start-up is not latency."""
    limit = time.monotonic() + EXIT_TIMEOUT
    while len(client.client_list()) <= alone:
        if summary.poll() is not None or time.monotonic() > limit:
            raise SystemExit(f"latency: the summary never connected ({summary.returncode})")
        time.sleep(0.01)
    time.sleep(2 * defaults.SUPERVISOR_POLL_INTERVAL)


def one_round(url: str, build: str, tests: list[str], junit: Path, rng: random.Random) -> float:
    """Run one build to its end; returns seconds from the last acknowledge to the exit."""
    with closing(connect(url)) as client:
        worker = QueueWorker(client, BuildKeys(build), "latency-worker")
        alone = len(client.client_list())
        summary = summary_process(url, build, junit)
        # A pytest worker records its collection (none here) before it populates.
        record_collection(client, worker.keys, worker.worker_id, [], interrupted=False)
        worker.populate(tests)
        lease: Reservation | None = worker.reserve()
        last = len(tests)
        while isinstance(lease, Lease):
            last -= 1
            if last == 0:
                wait_until_watching(client, alone, summary)
                time.sleep(rng.uniform(0, defaults.SUPERVISOR_POLL_INTERVAL))
                acknowledged = time.perf_counter()
            _, lease = worker.acknowledge(lease, small_record(lease.unit))
        if last != 0:
            raise SystemExit(f"latency: {last} tests were never handed out")
    try:
        summary.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        summary.kill()
        summary.wait()
        raise SystemExit(f"latency: the summary had not exited {EXIT_TIMEOUT:g} s on") from None
    latency = time.perf_counter() - acknowledged
    _, err = summary.communicate()
    if summary.returncode != 0:
        raise SystemExit(f"latency: the summary exited {summary.returncode}: {err.decode()}")
    return latency


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=TESTS, help="tests in each build")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="builds measured")
    parser.add_argument("--limit", type=float, default=LIMIT_SECONDS, help="target, seconds")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rng = random.Random(20261128)
    tests = node_ids(args.tests)
    with PrivateRedis() as server, tempfile.TemporaryDirectory(prefix="ciq-latency-") as tmp:
        latencies = [
            one_round(server.url, f"latency-{n}", tests, Path(tmp) / f"{n}.xml", rng)
            for n in range(args.rounds)
        ]
    median = statistics.median(latencies)
    poll = defaults.SUPERVISOR_POLL_INTERVAL
    print(
        f"{args.tests} tests a build, {args.rounds} builds; the summary woken by the end "
        f"(rounds spread over {poll:g} s)"
    )
    print("last acknowledge -> summary exited, s: " + " ".join(f"{s:.3f}" for s in latencies))
    print(
        f"median {median:.3f} s, slowest {max(latencies):.3f} s (target: median < {args.limit:g})"
    )
    if median >= args.limit:
        print(f"latency: FAILED, the median {median:.3f} s is not under {args.limit:g} s")
        return 1
    print(f"latency: ok, the summary exits within {args.limit:g} s of the last acknowledge")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
