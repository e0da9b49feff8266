"""A build that loses part of its state in Redis (evicted, expired, flushed) is never called
good: through the real CLI, `ciqueue-gha worker` processes and `ciqueue-gha summary` against a
redis-server of the test's own, one structural key is deleted while the workers run, or after
the build ended; every process exits 4 with one line saying queue state lost, never 0, and
prints no traceback.

The suite is tests/e2e/fault_suites/check_takeover.py (see test_faults.py): worker A holds its
first test until the driving test releases it, worker B runs the quick ones meanwhile, so at
the moment of the loss the build has tests finalized, running and queued.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciqueue_gha.connection import connect
from ciqueue_gha.errors import EXIT_INFRASTRUCTURE, EXIT_PASSED
from tests.e2e.test_faults import SUITES, Build, one_line_error
from tests.support.redis_server import ControlledRedis

pytestmark = pytest.mark.slow

#: Structural keys that hold something while the build runs (mid-build) and after it ended
#: (no test is running then, so no lease is left to lose).
MID_BUILD = ["tests", "total", "results", "attempts", "leases", "lease-counter"]
AFTER_BUILD = ["tests", "total", "results", "attempts", "lease-counter"]


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Build]:
    folder = tmp_path / "suite"
    shutil.copytree(SUITES, folder)
    (folder / "marks").mkdir()
    with ControlledRedis() as server:
        started = Build(folder, server.url)
        try:
            yield started
        finally:
            started.cleanup()


def lose(build: Build, key: str) -> None:
    client = connect(build.redis_url)
    try:
        assert client.delete(build.keys.key(key)) == 1, f"{key} held nothing to lose"
    finally:
        client.close()


def assert_state_lost(build: Build, *names: str) -> None:
    """Each of `names` exited 4 with one error line, queue state lost; no traceback anywhere."""
    for name in names:
        assert build.finish(name) == EXIT_INFRASTRUCTURE, build.logs()
        assert "queue state lost" in one_line_error(build.stderr(name)), build.logs()
    build.assert_no_traceback()


@pytest.mark.parametrize("key", MID_BUILD)
def test_a_key_lost_mid_build_stops_every_worker_and_the_summary(build: Build, key: str) -> None:
    build.summary()
    build.worker("A", block="A", lease_timeout=5)
    build.wait_started("hold", "A")
    build.worker("B", block="A", lease_timeout=5)
    build.wait_quick_tests_ran("B")  # finalized: 3; running: A's held test and one behind it

    lose(build, key)
    build.release("hold", "A")

    assert_state_lost(build, "summary", "A", "B")
    assert not build.junit.exists()  # no report of a build that lost part of itself


@pytest.mark.parametrize("key", AFTER_BUILD)
def test_a_key_lost_after_the_build_fails_the_summary_and_a_rerun_worker(
    build: Build, key: str
) -> None:
    build.worker("A")
    assert build.finish("A") == EXIT_PASSED, build.logs()

    lose(build, key)
    build.summary()
    build.worker("C")  # the same job run again: it must not fill the build afresh

    assert_state_lost(build, "summary", "C")
    assert not build.junit.exists()
    assert not list(build.marks.glob("ran.*.C"))  # C ran nothing
