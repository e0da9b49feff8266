"""Forty slow-ish tests, one failing: run with -x (or --maxfail), the build stops after it.

The failing test is the slowest, so it is queued early both in collection order and when
recorded durations put the longest first. Under the queue it fails only once another worker
runs tests too, so there is always a worker for the failure to stop (on a loaded machine the
second may start after the failing test would have ended)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

FAILING = 3

#: Longest the failing test waits for another worker before it fails anyway.
PARTNER_WAIT = 60.0


def wait_for_another_worker() -> None:
    log, me = os.environ.get("SUITE_LOG"), os.environ.get("CIQUEUE_WORKER_ID")
    if not log or not me:
        return  # plain pytest
    deadline = time.monotonic() + PARTNER_WAIT
    while time.monotonic() < deadline:
        workers = {line.split("\t")[0] for line in Path(log).read_text().splitlines()}
        if workers - {me}:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("n", range(40))
def test_step(n: int) -> None:
    if n == FAILING:
        wait_for_another_worker()
    time.sleep(0.4 if n == FAILING else 0.1)
    assert n != FAILING, f"test {n} fails"
