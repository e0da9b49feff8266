"""Steps that fail when $FAIL_STEPS (a comma list of step numbers) names them."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("step", range(5))
def test_step(step: int) -> None:
    failing = os.environ.get("FAIL_STEPS", "").split(",")
    assert str(step) not in failing, f"step {step} asked to fail by FAIL_STEPS"
