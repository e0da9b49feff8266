"""A runner that may be broken: with $SUITE_BROKEN set, every test errors at setup, as on a
runner whose database is gone. Each test leaves a line in the file $SUITE_LOG names: its
worker, its node id, and ``broken`` or ``ran``.

A healthy worker's test first waits until the broken workers have failed $SUITE_WAIT_FOR_BROKEN
tests in all, so the broken ones meet their tests whatever the machine's load."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

#: How long a healthy test waits for the broken workers before it goes on anyway.
WAIT_LIMIT = 60.0


def _note(log: Path, nodeid: str, what: str) -> None:
    worker = os.environ.get("CIQUEUE_WORKER_ID", "plain")
    with log.open("a", encoding="utf-8") as out:
        out.write(f"{worker}\t{nodeid}\t{what}\n")


def _broken_so_far(log: Path) -> int:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return sum(line.endswith("\tbroken") for line in lines)


@pytest.fixture(autouse=True)
def _runner(request: pytest.FixtureRequest) -> None:
    log = Path(os.environ["SUITE_LOG"])
    if os.environ.get("SUITE_BROKEN"):
        _note(log, request.node.nodeid, "broken")
        raise ConnectionRefusedError("connection refused: localhost:5432")
    deadline = time.monotonic() + WAIT_LIMIT
    while _broken_so_far(log) < int(os.environ.get("SUITE_WAIT_FOR_BROKEN", "0")):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    _note(log, request.node.nodeid, "ran")
