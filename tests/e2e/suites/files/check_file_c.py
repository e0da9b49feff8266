"""One file of four: its first test waits for a second worker, the rest are quick."""

from __future__ import annotations

import time

import pytest
from conftest import wait_for_company


def test_first() -> None:
    wait_for_company()


@pytest.mark.parametrize("n", range(3))
def test_more(n: int) -> None:
    time.sleep(0.05)


class TestInClass:
    def test_method(self) -> None:
        time.sleep(0.05)
