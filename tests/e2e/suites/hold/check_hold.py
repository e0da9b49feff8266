"""Tests that hold their worker: each writes its pid to ``$HOLD_DIR/<worker>.started`` (the
worker runs pytest in its own process, so that is the worker's pid), then sleeps until its
worker is stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

#: A held test gives up after this long, so no worker outlives a lost driver for long.
HOLD_LIMIT = 60.0


@pytest.mark.parametrize("n", range(4))  # a worker holds two: one running, one reserved
def test_hold(n: int) -> None:
    folder, worker = Path(os.environ["HOLD_DIR"]), os.environ["CIQUEUE_WORKER_ID"]
    writing = folder / f"{worker}.writing"
    writing.write_text(str(os.getpid()))
    writing.rename(folder / f"{worker}.started")  # whole, or not there at all
    time.sleep(HOLD_LIMIT)
