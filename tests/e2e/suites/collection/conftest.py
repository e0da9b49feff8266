"""Every test leaves a line in the file $SUITE_LOG names when it runs:
its worker and its node id, tab-separated."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _record_run(request: pytest.FixtureRequest) -> None:
    path = os.environ.get("SUITE_LOG")
    if path:
        worker = os.environ.get("CIQUEUE_WORKER_ID", "plain")
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{worker}\t{request.node.nodeid}\n")
