"""60 tests of 0.2 s, the first failing, two warning: a build long enough to watch. Each test
writes the time it ended to $SUITE_LOG, so the driving test knows when the last one ended."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def ended() -> Iterator[None]:
    yield
    with open(os.environ["SUITE_LOG"], "a", encoding="utf-8") as out:
        out.write(f"{time.time()}\n")


def test_fails_first() -> None:
    time.sleep(0.2)
    print("output of the failing test")
    assert 1 == 2


@pytest.mark.parametrize("n", range(2))
def test_warns(n: int) -> None:
    time.sleep(0.2)
    warnings.warn("this API is old", DeprecationWarning, stacklevel=1)


@pytest.mark.parametrize("n", range(57))
def test_sleeps(n: int) -> None:
    time.sleep(0.2)
    print(f"output of test {n}")
