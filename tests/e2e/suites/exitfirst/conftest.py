"""Every test leaves two lines in the file $SUITE_LOG names: when it starts and when it ends,
each as its worker, its node id, the event and the time, tab-separated."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest


def _log(nodeid: str, event: str) -> None:
    path = os.environ.get("SUITE_LOG")
    if path:
        worker = os.environ.get("CIQUEUE_WORKER_ID", "plain")
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{worker}\t{nodeid}\t{event}\t{time.time()}\n")


@pytest.fixture(autouse=True)
def _record_run(request: pytest.FixtureRequest) -> Iterator[None]:
    _log(request.node.nodeid, "start")
    yield
    _log(request.node.nodeid, "end")
