"""Failing tests whose messages, output and ids hold workflow commands, one flaky among them."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from hostile_text import HOSTILE, IDS


def test_message() -> None:
    assert not HOSTILE, f"message{HOSTILE}"


def test_output() -> None:
    print(f"captured stdout{HOSTILE}")
    sys.stderr.write(f"captured stderr{HOSTILE}")
    raise RuntimeError(f"raised{HOSTILE}")


@pytest.mark.parametrize("value", IDS)
def test_id(value: str) -> None:
    assert value == "", f"id{HOSTILE}"


@pytest.mark.parametrize("value", ["##[error]flaky-id"])
def test_flaky(value: str) -> None:
    marker = Path(tempfile.gettempdir()) / "hostile-flaky-ran-once"
    if not marker.exists():
        marker.touch()
        raise AssertionError(f"flaky{HOSTILE}")


def test_passes() -> None:
    print(HOSTILE)
