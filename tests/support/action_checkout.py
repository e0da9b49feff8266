"""The action as a runner gets it, for the tests that run it (tests/e2e/test_action.py and
its neighbours): a checkout of this repository, and a venv of the project's declared
dependencies without the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What a checkout of the action holds: the repository without caches and build output.
NOT_IN_CHECKOUT = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "ciqueue-junit.xml",
)


def copy_checkout(folder: Path) -> Path:
    """This repository as an action checkout holds it, in `folder`."""
    return Path(shutil.copytree(ROOT, folder / "ciqueue-gha", ignore=NOT_IN_CHECKOUT))


def install_dependencies(folder: Path, checkout: Path) -> Path:
    """A venv in `folder` holding the project's declared dependencies, not the project: pip
    installs the project (from a scratch copy, so the checkout gains no build output), then
    uninstalls it. Returns its site-packages. The one step of these tests that may use the
    network."""
    venv = folder / "venv"
    scratch = Path(shutil.copytree(checkout, folder / "project"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    # setuptools and wheel: what the install step's build needs without build isolation.
    build = ["setuptools>=68", "wheel"]
    subprocess.run([*pip, "install", str(scratch), *build], check=True, timeout=600)
    subprocess.run([*pip, "uninstall", "-y", "ciqueue-gha"], check=True, timeout=120)
    return site_packages(python)


def site_packages(python: str) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    done = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip())
