"""One flaky test and one that fails only when DEMO_FAIL=1."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def test_flaky_under_the_queue() -> None:
    """Fails on its first attempt in a ciqueue-gha build, passes when requeued."""
    build = os.environ.get("CIQUEUE_BUILD_ID")
    if build is None:
        return  # plain pytest: nothing to be flaky about
    marker = Path(tempfile.gettempdir()) / f"ciqueue-demo-flaky-{build}"
    if not marker.exists():
        marker.touch()
        raise AssertionError("first attempt fails (requeue it: --max-requeues 1)")


def test_fails_when_asked() -> None:
    assert os.environ.get("DEMO_FAIL") != "1", "DEMO_FAIL=1 asked this test to fail"
