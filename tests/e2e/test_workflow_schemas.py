"""action.yml and every workflow of the repository validate against GitHub's schemas, offline.

check-jsonschema ships the schemas (``vendor.github-actions``, ``vendor.github-workflows``)
inside its package. Each run gets a fresh, empty cache folder and proxies that lead nowhere,
so a schema fetched from the network would fail the run (and leave a file in the cache),
not pass silently. Failures are reported with ``--verbose``: the default message names only
the "best match" of a ``oneOf``, which for a composite action is the misleading
"'main' is a required property".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOW_DIRS = (ROOT / ".github" / "workflows", ROOT / "examples" / "workflows")
WORKFLOWS = sorted(
    path
    for folder in WORKFLOW_DIRS
    for pattern in ("*.yml", "*.yaml")
    for path in folder.glob(pattern)
)

#: A loopback port nothing listens on: every request through the proxies fails at once.
DEAD_PROXY = "http://127.0.0.1:9"


def check_jsonschema() -> list[str]:
    script = Path(sys.executable).with_name("check-jsonschema")
    return [str(script)] if script.exists() else [sys.executable, "-m", "check_jsonschema"]


def validate(schema: str, paths: list[Path], cache: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with a built-in schema, no network and an empty cache of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in ("no_proxy", "http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        ALL_PROXY=DEAD_PROXY,
        XDG_CACHE_HOME=str(cache),
    )
    argv = [*check_jsonschema(), "--verbose", "--no-cache", "--builtin-schema", schema]
    return subprocess.run(
        [*argv, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def files_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def test_every_workflow_of_the_repository_is_checked() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in WORKFLOWS}
    expected = {
        ".github/workflows/ci.yml",
        "examples/workflows/matrix.yml",
        "examples/workflows/one-runner.yml",
    }
    assert expected <= names


def test_action_yml_is_a_valid_action(cache: Path) -> None:
    done = validate("vendor.github-actions", [ACTION], cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation done" in done.stdout
    assert files_in(cache) == [], "check-jsonschema cached something it fetched"


def test_every_workflow_is_valid(cache: Path) -> None:
    # One run for all of them (each names its file in an error): a run costs a second.
    done = validate("vendor.github-workflows", WORKFLOWS, cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation done" in done.stdout
    assert files_in(cache) == [], "check-jsonschema cached something it fetched"


def without_shell(action: dict[str, Any]) -> None:
    del action["runs"]["steps"][0]["shell"]


def with_services(action: dict[str, Any]) -> None:
    action["runs"]["services"] = {"redis": {"image": "redis:7"}}


def with_unknown_input_key(action: dict[str, Any]) -> None:
    action["inputs"]["mode"]["requried"] = True


@pytest.mark.parametrize(
    ("breakage", "cause"),
    [
        (without_shell, "$.runs.steps[0]"),
        (with_services, "'services' was unexpected"),
        (with_unknown_input_key, "'requried' was unexpected"),
    ],
    ids=["composite step without shell", "services in a composite action", "misspelt key"],
)
def test_a_broken_action_fails_validation(
    breakage: Any, cause: str, tmp_path: Path, cache: Path
) -> None:
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    breakage(action)
    broken = tmp_path / "action.yml"
    broken.write_text(yaml.safe_dump(action, sort_keys=False), encoding="utf-8")
    done = validate("vendor.github-actions", [broken], cache)
    assert done.returncode == 1, done.stdout + done.stderr
    # --verbose lists every error, the real cause among them.
    assert cause in done.stdout, done.stdout


def test_a_broken_workflow_fails_validation(tmp_path: Path, cache: Path) -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "workflows" / "matrix.yml").read_text())
    del workflow["jobs"]["worker"]["runs-on"]
    broken = tmp_path / "matrix.yml"
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    done = validate("vendor.github-workflows", [broken], cache)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "runs-on" in done.stdout, done.stdout
