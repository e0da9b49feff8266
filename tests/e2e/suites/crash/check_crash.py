"""Tests that end their worker, each its own way, among tests that pass. Each notes in
runs.txt that it started, before it dies: a unit run twice is a unit handed on."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

import pytest


def started(name: str) -> None:
    with open(Path(__file__).parent / "runs.txt", "a") as runs:
        runs.write(f"{name} {os.getpid()}\n")


def test_exits() -> None:
    started("exits")
    os._exit(3)


def test_kills_itself() -> None:
    started("kills_itself")
    os.kill(os.getpid(), signal.SIGKILL)


def test_segfaults() -> None:
    started("segfaults")
    ctypes.string_at(0)


@pytest.mark.parametrize("index", range(6))
def test_fine(index: int) -> None:
    pass
