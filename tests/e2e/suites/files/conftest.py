"""Every test leaves a line in the file $SUITE_LOG names when it runs:
its worker and its node id, tab-separated.

`wait_for_company` holds a file's first test until a second worker has started a file too
(markers in $COMPANY_DIR), so the files of the suite never all land on one worker merely
because the others were slow to start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

#: A first test waits at most this long for a second worker, then runs anyway.
COMPANY_LIMIT = 20.0


def wait_for_company() -> None:
    folder = Path(os.environ["COMPANY_DIR"])
    (folder / f"started.{os.environ['CIQUEUE_WORKER_ID']}").touch()
    limit = time.monotonic() + COMPANY_LIMIT
    while len(list(folder.glob("started.*"))) < 2 and time.monotonic() < limit:
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _record_run(request: pytest.FixtureRequest) -> None:
    with open(os.environ["SUITE_LOG"], "a", encoding="utf-8") as out:
        out.write(f"{os.environ['CIQUEUE_WORKER_ID']}\t{request.node.nodeid}\n")
