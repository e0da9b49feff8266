"""A file that fails to import: a collection error (tests/e2e/test_collection.py runs the
suite with and without --continue-on-collection-errors, and with it --ignore'd)."""

from __future__ import annotations

import os  # noqa: F401

from a_module_nobody_installed import thing  # type: ignore[import-not-found]  # noqa: F401


def test_never_collected() -> None:
    pass
