"""Fixtures of the demo suite."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def worker_id() -> str:
    """Which ciqueue-gha worker runs this test ('plain' under plain pytest)."""
    return os.environ.get("CIQUEUE_WORKER_ID", "plain")
