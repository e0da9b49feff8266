"""Writes straight to the worker's file descriptors, outside any test's capture."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from hostile_text import HOSTILE


def pytest_configure() -> None:
    os.write(1, f"conftest fd 1{HOSTILE}\n".encode())
    os.write(2, f"conftest fd 2{HOSTILE}".encode())  # no newline: the next line continues it


def pytest_unconfigure() -> None:
    os.write(1, f"conftest at exit{HOSTILE}".encode())
    os.write(2, f"conftest at exit fd 2{HOSTILE}".encode())
