"""Tests of known, distinct durations, collected in an order that is not longest first."""

from __future__ import annotations

import time

import pytest

SECONDS = [0.0, 0.15, 0.5, 0.3]


@pytest.mark.parametrize("seconds", SECONDS)
def test_sleep(seconds: float) -> None:
    time.sleep(seconds)
