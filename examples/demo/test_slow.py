"""Tests that take a while, so spreading them over workers pays."""

from __future__ import annotations

import time

import pytest


@pytest.mark.parametrize("seconds", [1.5, 1.0, 1.0, 0.5, 0.5])
def test_slow_operation(seconds: float, worker_id: str) -> None:
    time.sleep(seconds)
    assert worker_id


class TestService:
    def test_starts(self) -> None:
        time.sleep(0.3)

    def test_answers(self) -> None:
        time.sleep(0.3)
        assert "pong".startswith("p")
