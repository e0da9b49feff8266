"""The action leaves the job's environment alone (issue 10, #13): its install step, run as
action.yml writes it against a copy of this repository, in a venv where the job pinned older
pytest, redis and hiredis, changes none of them, and `ciqueue-gha run` works on the demo there.

Slow, and the one test that needs the package index: the venv's pins and the action's build
requirements come from it, as on a runner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_action import DEMO_TESTS, ROOT
from tests.support.action_checkout import NOT_IN_CHECKOUT

pytestmark = pytest.mark.slow

#: What the job pinned before using the action: pytest and redis at the floors pyproject.toml
#: declares, and an older hiredis than the one pip would pick.
PINS = {"pytest": "7.4.4", "redis": "4.6.0", "hiredis": "2.3.2"}

#: Longest the network steps may take on a slow day.
INSTALL_LIMIT = 600


def install_step() -> str:
    """The bash of action.yml's install step."""
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "Install ciqueue-gha")
    assert step["env"] == {"CIQUEUE_PYTHON": "${{ inputs.python }}"}, step
    return str(step["run"])


def job_env(tmp: Path, **extra: str) -> dict[str, str]:
    """This environment without the dev venv, GitHub's, ciqueue-gha's or pip's offline
    switches leaking in."""
    dev_bin = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CIQUEUE_", "GITHUB_", "PYTEST_", "DEMO_"))
        and name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_NO_INDEX")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != dev_bin)
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def versions(python: Path) -> dict[str, str]:
    code = f"import importlib.metadata as m; print(*(m.version(n) for n in {list(PINS)}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return dict(zip(PINS, done.stdout.split(), strict=True))


def test_installing_the_action_keeps_the_jobs_pinned_packages(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = job_env(tmp_path / "tmp")
    checkout = Path(shutil.copytree(ROOT, tmp_path / "action", ignore=NOT_IN_CHECKOUT))
    venv = tmp_path / "job-venv"
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pins = [f"{name}=={version}" for name, version in PINS.items()]
    subprocess.run(
        [python, "-m", "pip", "install", "-q", *pins], env=env, check=True, timeout=INSTALL_LIMIT
    )
    assert versions(python) == PINS

    step_env = {**env, "CIQUEUE_PYTHON": str(python), "GITHUB_ACTION_PATH": str(checkout)}
    # As the runner runs a bash step.
    installed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", install_step()],
        env=step_env,
        capture_output=True,
        text=True,
        timeout=INSTALL_LIMIT,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert versions(python) == PINS, "the action's install step changed the job's packages"

    # ciqueue-gha works there, under the job's pytest.
    merged = tmp_path / "merged.xml"
    argv = [str(venv / "bin" / "ciqueue-gha"), "run", "--workers", "2", "--junit-xml", str(merged)]
    argv += ["--max-requeues", "1", "--requeue-tolerance", "0.1", "--", "-q", "examples/demo"]
    done = subprocess.run(
        argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=INSTALL_LIMIT
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    cases = list(ET.parse(merged).getroot().iter("testcase"))
    assert len(cases) == DEMO_TESTS, output
    assert not any(case.find("failure") is not None for case in cases)
    assert versions(python) == PINS
