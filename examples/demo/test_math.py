"""Quick arithmetic tests: most of the suite, as in most suites."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(20))
def test_square_is_non_negative(n: int) -> None:
    assert n * n >= 0


@pytest.mark.parametrize(("a", "b", "total"), [(1, 2, 3), (2, 2, 4), (-1, 1, 0), (10, -3, 7)])
def test_addition(a: int, b: int, total: int) -> None:
    assert a + b == total


def test_division_by_zero_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        _ = 1 / 0


@pytest.mark.skip(reason="shows a skip in the report")
def test_skipped() -> None:
    raise AssertionError("never runs")


@pytest.mark.xfail(reason="shows an expected failure", strict=True)
def test_expected_failure() -> None:
    assert 0.1 + 0.2 == 0.3
