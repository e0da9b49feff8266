"""Skipped whole at import, as 43 files of networkx's suite are: a module-level skip."""

from __future__ import annotations

import pytest

missing = pytest.importorskip("a_module_nobody_installed_either")


def test_never_run() -> None:
    pass
