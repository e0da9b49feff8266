"""Two tests known to run long, and short ones, sharing a module fixture. Every test and the
fixture write a line to $SUITE_LOG (worker, event, name): the driving test reads who ran
what, and how often each worker set the module fixture up and tore it down.

``test_long[a]`` runs until another worker has started a test (at most WAIT_LIMIT seconds):
whatever its worker holds meanwhile cannot go to that other worker."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

WAIT_LIMIT = 30.0


def log(event: str, name: str) -> None:
    worker = os.environ.get("CIQUEUE_WORKER_ID", "plain")
    with open(os.environ["SUITE_LOG"], "a", encoding="utf-8") as out:
        out.write(f"{worker}\t{event}\t{name}\n")


def another_worker_started() -> bool:
    me = os.environ.get("CIQUEUE_WORKER_ID", "plain")
    for line in Path(os.environ["SUITE_LOG"]).read_text(encoding="utf-8").splitlines():
        worker, event, _ = line.split("\t")
        if event == "start" and worker != me:
            return True
    return False


@pytest.fixture(scope="module")
def shared() -> Iterator[None]:
    log("setup", "module")
    yield
    log("teardown", "module")


def test_long_a(shared: None) -> None:
    log("start", "long-a")
    limit = time.monotonic() + WAIT_LIMIT
    while not another_worker_started() and time.monotonic() < limit:
        time.sleep(0.05)
    log("end", "long-a")


def test_long_b(shared: None) -> None:
    log("start", "long-b")
    time.sleep(0.5)
    log("end", "long-b")


@pytest.mark.parametrize("n", range(6))
def test_short(n: int, shared: None) -> None:
    log("start", f"short-{n}")
    log("end", f"short-{n}")
