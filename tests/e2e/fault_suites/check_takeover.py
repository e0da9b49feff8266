"""One test that may hold its worker (test_hold), then quick ones."""

from __future__ import annotations

import pytest
from faultlib import hold, ran


def test_hold() -> None:
    hold("hold")


@pytest.mark.parametrize("n", range(4))
def test_quick(n: int) -> None:
    ran(f"quick{n}")
