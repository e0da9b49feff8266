"""The built wheel carries what the package reads at run time: every Lua script and
py.typed. Built from a copy of the sources, so the checkout gains no build/ or egg-info."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ciqueue_gha
from ciqueue_gha.protocol.scripts import SCRIPT_NAMES

SOURCE = Path(ciqueue_gha.__file__).parent
ROOT = SOURCE.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "src"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(SOURCE, tree / "ciqueue_gha", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(work / "dist"),
            str(tree),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = (work / "dist").glob("ciqueue_gha-*.whl")
    yield built


def test_wheel_contains_every_lua_script_and_py_typed(wheel: Path) -> None:
    scripts = sorted(path.name for path in (SOURCE / "protocol" / "lua").glob("*.lua"))
    assert "_prelude.lua" in scripts and len(scripts) >= 8
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "ciqueue_gha/py.typed" in names
        for script in scripts:
            member = f"ciqueue_gha/protocol/lua/{script}"
            assert member in names, f"{script} is missing from {wheel.name}"
            assert archive.read(member) == (SOURCE / "protocol" / "lua" / script).read_bytes()


def test_scripts_load_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    # Unpacked, the wheel is what site-packages would hold; run from there (not from the
    # checkout, whose ciqueue_gha would shadow it) with it first on PYTHONPATH.
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    probe = (
        "import ciqueue_gha, ciqueue_gha.protocol.scripts as s;"
        "print(ciqueue_gha.__file__);"
        "print(sum(len(s.source(name)) > 0 for name in s.SCRIPT_NAMES))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    location, loaded = done.stdout.split()
    assert Path(location).is_relative_to(tmp_path)
    assert int(loaded) == len(SCRIPT_NAMES)
