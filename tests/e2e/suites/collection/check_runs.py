"""Tests that collect and pass: they run unless collection errors stop the build."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(6))
def test_passes(n: int) -> None:
    assert n >= 0


class TestGrouped:
    def test_in_class(self) -> None:
        assert True
