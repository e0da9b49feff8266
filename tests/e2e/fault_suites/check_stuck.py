"""Tests that each hold their worker: a build whose workers all die leaves them not run
(two running, two reserved behind them, two still queued)."""

from __future__ import annotations

import pytest
from faultlib import hold


@pytest.mark.parametrize("n", range(6))
def test_stuck(n: int) -> None:
    hold(f"stuck{n}")
