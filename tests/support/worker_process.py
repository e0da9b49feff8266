"""A queue worker in a process of its own, holding one test until it is killed.

Run by path or as ``python -m tests.support.worker_process``:

    worker_process.py REDIS_URL BUILD_ID WORKER_ID --lease-timeout S --heartbeat-interval S TEST...

It connects, populates the queue with the tests (as leader or follower), starts the real
heartbeat helper, reserves a test (a window of `--window` tests: the first runs, the others
are held) and then "runs" it forever under a live heartbeat. Once it holds the leases it
prints one JSON line on stdout:

    {"lease": [test, lease id], "window": [[test, lease id], ...], "worker_pid": pid,
     "helper_pid": pid}

so a test knows when to kill it, and which helper process must then exit by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import QueueSettings, QueueWorker, Window
from ciqueue_gha.queue.helper_process import HeartbeatProcess
from ciqueue_gha.queue.settings import HelperConfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("redis_url")
    parser.add_argument("build_id")
    parser.add_argument("worker_id")
    parser.add_argument("tests", nargs="+")
    parser.add_argument("--lease-timeout", type=float, required=True)
    parser.add_argument("--heartbeat-interval", type=float, required=True)
    parser.add_argument("--max-test-duration", type=float, default=600.0)
    parser.add_argument("--window", type=int, default=1, help="leases to reserve in one call")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = QueueSettings(
        lease_timeout=args.lease_timeout,
        heartbeat_interval=args.heartbeat_interval,
        max_test_duration=args.max_test_duration,
    )
    keys = BuildKeys(args.build_id)
    worker = QueueWorker(connect(args.redis_url), keys, args.worker_id, settings)
    worker.populate(args.tests)
    helper = HeartbeatProcess(
        HelperConfig(
            redis_url=args.redis_url,
            verify_tls=True,
            build_id=keys.build_id,
            attempt=keys.attempt,
            worker_id=args.worker_id,
            lease_timeout=args.lease_timeout,
            heartbeat_interval=args.heartbeat_interval,
            max_test_duration=args.max_test_duration,
        )
    )
    try:
        window = worker.wait_for_window(worker.reserve_window(args.window), args.window)
        if not isinstance(window, Window):
            return 1
        lease, *others = window.leases
        helper.hold(lease, *others)
        line = {
            "lease": [lease.unit, lease.id],
            "window": [[held.unit, held.id] for held in window.leases],
            "worker_pid": os.getpid(),
            "helper_pid": helper.process.pid,
        }
        print(json.dumps(line), flush=True)
        while True:  # the test "runs" until this process is killed
            time.sleep(1)
    finally:
        helper.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
