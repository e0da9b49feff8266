"""The action's checkout and its dependencies' venv, for test_action.py and
test_output_safety.py: built once per run, however many xdist workers use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.action_checkout import copy_checkout, install_dependencies, site_packages
from tests.support.once import built_once


@pytest.fixture(scope="session")
def action_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository as an action checkout holds it (copied once; each job copies this)."""
    return built_once(tmp_path_factory, "action", copy_checkout) / "ciqueue-gha"


@pytest.fixture(scope="session")
def dependencies(tmp_path_factory: pytest.TempPathFactory, action_checkout: Path) -> Path:
    """site-packages of a venv holding the project's declared dependencies, not the project."""
    folder = built_once(
        tmp_path_factory, "dependencies", lambda into: install_dependencies(into, action_checkout)
    )
    return site_packages(str(folder / "venv" / "bin" / "python"))
