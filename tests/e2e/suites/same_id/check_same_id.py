"""Twenty short tests for two worker processes started under one worker id.

Each test leaves a line in the file $SUITE_LOG names: its worker id, its worker's pid (the
worker runs pytest in its own process) and its node id, tab-separated. The first test of each
process waits until two processes have started ($COMPANY_DIR), so both are alive together
whatever the machine's load.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

#: The first test waits at most this long for the other process, then runs anyway.
COMPANY_LIMIT = 60.0


@pytest.fixture(scope="session", autouse=True)
def _both_alive() -> None:
    folder = Path(os.environ["COMPANY_DIR"])
    (folder / f"started.{os.getpid()}").touch()
    limit = time.monotonic() + COMPANY_LIMIT
    while len(list(folder.glob("started.*"))) < 2 and time.monotonic() < limit:
        time.sleep(0.02)


@pytest.mark.parametrize("n", range(20))
def test_once(n: int) -> None:
    with open(os.environ["SUITE_LOG"], "a", encoding="utf-8") as out:
        out.write(f"{os.environ['CIQUEUE_WORKER_ID']}\t{os.getpid()}\ttest_once[{n}]\n")
    time.sleep(0.05)
