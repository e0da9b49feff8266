"""Forty slow-ish tests, one failing: run with -x (or --maxfail), the build stops after it.

The failing test is the slowest, so it is queued early both in collection order and when
recorded durations put the longest first."""

from __future__ import annotations

import time

import pytest

FAILING = 3


@pytest.mark.parametrize("n", range(40))
def test_step(n: int) -> None:
    time.sleep(0.4 if n == FAILING else 0.1)
    assert n != FAILING, f"test {n} fails"
