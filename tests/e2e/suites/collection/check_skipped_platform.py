"""Skipped whole by pytest.skip(allow_module_level=True)."""

from __future__ import annotations

import pytest

pytest.skip("not on this platform", allow_module_level=True)


def test_never_run() -> None:
    pass
