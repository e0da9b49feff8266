"""Tests that misbehave: one ends its worker with os._exit(), two print 50 MB each."""

from __future__ import annotations

import os
import sys
import time

FIFTY_MB_LINES = 50 * 1024  # lines of 1 KiB


def test_before() -> None:
    time.sleep(0.1)


def test_calls_os_exit() -> None:
    os._exit(3)


def test_after_one() -> None:
    time.sleep(0.1)


def test_after_two() -> None:
    pass


def test_prints_50_mb() -> None:
    line = "x" * 1023 + "\n"
    for _ in range(FIFTY_MB_LINES):
        sys.stdout.write(line)


def test_prints_50_mb_then_fails() -> None:
    line = "y" * 1023 + "\n"
    for _ in range(FIFTY_MB_LINES):
        sys.stdout.write(line)
    raise AssertionError("failed after printing 50 MB")
