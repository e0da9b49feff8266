"""Twelve quick tests; `test_real` fails wherever it runs when $SUITE_REAL_FAILURE is set."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("n", range(12))
def test_fine(n: int) -> None:
    assert n >= 0


def test_real() -> None:
    assert not os.environ.get("SUITE_REAL_FAILURE"), "a real failure"
