"""Side effects the fault suites leave for tests/e2e/test_faults.py to read.

Every test writes marker files into ``$FAULT_DIR`` named ``<event>.<test>.<worker>``:
``started`` when it begins and ``ran`` when it ends, so the driving test knows which worker
runs (or ran) what. `hold` blocks while the worker is one ``$FAULT_BLOCK`` names (a comma
list of worker ids, ``*`` for every worker), until ``release.<test>.<worker>`` exists.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

#: A held test gives up after this long, so a lost driver never leaves a worker behind.
HOLD_LIMIT = 120.0


def _marker(event: str, name: str) -> Path:
    folder = os.environ.get("FAULT_DIR")
    if not folder:
        pytest.skip("a fault suite runs only under tests/e2e/test_faults.py")
    return Path(folder) / f"{event}.{name}.{os.environ['CIQUEUE_WORKER_ID']}"


def ran(name: str) -> None:
    _marker("started", name).touch()
    _marker("ran", name).touch()


def hold(name: str) -> None:
    _marker("started", name).touch()
    blocking = os.environ.get("FAULT_BLOCK", "").split(",")
    if "*" in blocking or os.environ["CIQUEUE_WORKER_ID"] in blocking:
        release = _marker("release", name)
        limit = time.monotonic() + HOLD_LIMIT
        while not release.exists():
            assert time.monotonic() < limit, f"{name}: never released"
            time.sleep(0.02)
    _marker("ran", name).touch()
