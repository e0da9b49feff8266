"""Eight quick tests, half of them failing: the odd ones."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(8))
def test_half_fail(n: int) -> None:
    assert n % 2 == 0, f"{n} is odd"
