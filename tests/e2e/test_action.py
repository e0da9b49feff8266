"""The composite action run as GitHub's runner runs it (tests/support/actions_runner.py):
action.yml parsed, inputs substituted, each step's bash run with the runner's files and
variables, on a real redis-server, reporting to a loopback stand-in for GitHub's API.

Each job gets what a runner gives it: its own checkout of the action (a copy of this
repository, as ``uses: owner/ciqueue-gha@v1`` downloads one), its own Python, a workspace and
a temporary folder. The Python is a fresh venv that sees the project's declared dependencies
(installed once a session into a venv of their own, without the project) and nothing else,
so the action's install step is what puts ciqueue-gha there, and a dependency the package
needs but does not declare fails the job as it would on GitHub. pip runs offline
(``PIP_NO_INDEX``) and builds without isolation: everything it needs is already there.

The demo suite (examples/demo, 36 tests, one flaky under the queue, one failing when
``DEMO_FAIL=1``) runs from each worker's workspace, which holds a copy of it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.action_checkout import NOT_IN_CHECKOUT, site_packages
from tests.support.actions_runner import ActionRunner, Job, JobRun, StepRun, wait_group_empty
from tests.support.fake_github import FakeGitHub, Reply
from tests.support.redis_server import ControlledRedis

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
REPOSITORY = "octo-org/octo-repo"
#: The pull request's head commit, where the check run belongs, and the merge commit
#: GitHub checks out for a pull_request event (GITHUB_SHA), where it does not.
HEAD_SHA = "1f0e5c1d6a0b4c2e8f9a7b3d5c6e7f8091a2b3c4"
MERGE_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
PULL_REQUEST = 17

DEMO_TESTS = 36
FAILING_FILE = "examples/demo/test_flaky_and_env.py"
FAILING_TEST = f"{FAILING_FILE}::test_fails_when_asked"
FLAKY_TEST = f"{FAILING_FILE}::test_flaky_under_the_queue"
#: Lets the demo's flaky test pass on its second attempt.
REQUEUE = {"max-requeues": "1", "requeue-tolerance": "0.1"}

_runs = itertools.count(1)


def failing_line() -> int:
    """The 1-based line of the demo's assertion that fails under DEMO_FAIL=1."""
    source = (ROOT / FAILING_FILE).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(source, 1) if 'os.environ.get("DEMO_FAIL")' in line)


# --- what the runner machine provides ---------------------------------------------------------


def job_python(folder: Path, dependencies: Path) -> Path:
    """A fresh venv that sees `dependencies` (through a .pth file) and holds nothing else."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60
    )
    python = folder / "bin" / "python"
    (site_packages(str(python)) / "_job_dependencies.pth").write_text(f"{dependencies}\n")
    return python


def runner_env(tmp: Path) -> dict[str, str]:
    """The runner machine's environment: this one without variables of GitHub, ciqueue-gha,
    pytest, the demo or this dev venv leaking in."""
    dev_bin = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CIQUEUE_", "GITHUB_", "RUNNER_", "PYTEST_", "DEMO_"))
        and name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CI")
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if part != dev_bin
    )
    # The demo's flaky test keeps its marker in the temporary folder.
    env.update(TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    # Offline, and no isolated build env to download: the dependencies are all there.
    # (pip reads PIP_NO_BUILD_ISOLATION=0 as --no-build-isolation, a known quirk.)
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


class Workflow:
    """One workflow run: its jobs, each prepared as a runner would, and the runner."""

    def __init__(
        self, folder: Path, checkout: Path, dependencies: Path, github: FakeGitHub
    ) -> None:
        self.folder = folder
        self.checkout = checkout
        self.dependencies = dependencies
        self.run_id = f"{os.getpid()}{next(_runs):03d}"
        self.token = f"ghs_{secrets.token_hex(18)}"
        self.api = github
        self.runner = ActionRunner(
            github={"token": self.token, "repository": REPOSITORY, "sha": MERGE_SHA},
            base_env=runner_env(folder / "tmp"),
        )
        (folder / "tmp").mkdir()
        self.jobs: list[Job] = []

    def job(self, name: str, inputs: dict[str, str], *, demo: bool, **env: str) -> Job:
        """A job using the action with `inputs`; `demo`: its workspace holds the demo suite."""
        home = self.folder / name
        workspace, runner_temp = home / "workspace", home / "temp"
        workspace.mkdir(parents=True)
        runner_temp.mkdir()
        if demo:
            shutil.copytree(DEMO, workspace / "examples" / "demo", ignore=NOT_IN_CHECKOUT)
            # A repository's pytest configuration makes its root pytest's rootdir.
            (workspace / "pyproject.toml").write_text(
                '[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider"\n'
            )
        python = job_python(self.folder / "tools" / f"{name}-python", self.dependencies)
        action = Path(
            shutil.copytree(self.checkout, self.folder / "tools" / f"{name}-action" / "v1")
        )
        event = runner_temp / "_github_workflow" / "event.json"
        event.parent.mkdir()
        event.write_text(json.dumps(self.event()))
        job_env = {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_JOB": name,
            "GITHUB_RUN_ID": self.run_id,
            "GITHUB_RUN_NUMBER": "5",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/")[0],
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SHA": MERGE_SHA,
            "GITHUB_REF": f"refs/pull/{PULL_REQUEST}/merge",
            "GITHUB_API_URL": self.api.url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKFLOW": "tests",
            "RUNNER_OS": "Linux",
            **env,
        }
        job = Job(name, action, workspace, runner_temp, job_env, {"python": str(python), **inputs})
        self.jobs.append(job)
        return job

    def event(self) -> dict[str, Any]:
        return {
            "action": "synchronize",
            "number": PULL_REQUEST,
            "pull_request": {
                "number": PULL_REQUEST,
                "head": {"sha": HEAD_SHA, "ref": "feature"},
                "base": {"sha": "0" * 40, "ref": "main"},
            },
            "repository": {"full_name": REPOSITORY},
        }

    def matrix(
        self, redis_url: str, workers: int, summary: dict[str, str] | None = None, **env: str
    ) -> None:
        """The matrix shape of examples/workflows/matrix.yml: `workers` worker jobs and a
        summary job beside them."""
        for index in range(workers):
            self.job(
                f"worker-{index}",
                {
                    "mode": "worker",
                    "redis-url": redis_url,
                    "worker-id": str(index),
                    "pytest-args": "examples/demo",
                    "junit-xml": "",
                    **REQUEUE,
                },
                demo=True,
                **env,
            )
        self.job(
            "summary", {"mode": "summary", "redis-url": redis_url, **(summary or {})}, demo=False
        )

    def run(self) -> dict[str, JobRun]:
        return self.runner.run_jobs(self.jobs)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    yield server
    server.stop()
    assert not server.invalid, f"bodies GitHub would refuse: {server.invalid}"


@pytest.fixture
def workflow(
    tmp_path: Path, action_checkout: Path, dependencies: Path, github: FakeGitHub
) -> Iterator[Workflow]:
    run = Workflow(tmp_path, action_checkout, dependencies, github)
    try:
        yield run
    finally:
        run.runner.stop()


@pytest.fixture(scope="module")
def password_redis() -> Iterator[ControlledRedis]:
    with ControlledRedis(password=f"pw{secrets.token_hex(16)}") as server:
        yield server


# --- reading what the runner saw ---------------------------------------------------------------


def unescape(value: str) -> str:
    """A workflow command's message as the runner reads it."""
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def check_run_step(run: JobRun) -> StepRun:
    return run.step("ciqueue")


def assert_job_passed(run: JobRun, code: int = 0) -> None:
    assert run.returncode == code, run.describe()


def assert_masks_first(step: StepRun, values: list[str]) -> None:
    """`values` masked by the step's first lines, before anything else it printed."""
    lines = step.log.splitlines()
    leading = list(itertools.takewhile(lambda line: line.startswith("::add-mask::"), lines))
    masked = {unescape(line.removeprefix("::add-mask::")) for line in leading}
    missing = [v for v in values if v not in masked]
    assert not missing, f"{step.name}: not masked before its first output:\n{step.log}"


def assert_groups_balanced(step: StepRun) -> None:
    """Every ::group:: closed by an ::endgroup::, none nested (the runner does not nest)."""
    depth = 0
    for line in step.log.splitlines():
        if line.startswith("::group::"):
            assert depth == 0, f"{step.name}: a group inside a group:\n{step.log}"
            depth += 1
        elif line.startswith("::endgroup::"):
            assert depth == 1, f"{step.name}: ::endgroup:: outside a group:\n{step.log}"
            depth -= 1
    assert depth == 0, f"{step.name}: a group left open:\n{step.log}"


def assert_log_well_formed(runs: dict[str, JobRun]) -> None:
    """Every step: groups balanced, no traceback, and no process left behind."""
    for run in runs.values():
        for step in run.steps:
            assert_groups_balanced(step)
            assert "Traceback (most recent call last)" not in step.log, step.log
            assert wait_group_empty(step.pgid) == [], f"{run.name}/{step.name} left processes"


def assert_secrets_not_shown(
    values: list[str], runs: dict[str, JobRun], folder: Path, github: FakeGitHub
) -> None:
    """No secret in any log line but the masks, nor in any file the jobs wrote (workspaces,
    runner files, JUnit), nor in what was sent to GitHub but the Authorization header."""
    for run in runs.values():
        for step in run.steps:
            for number, line in enumerate(step.log.splitlines(), 1):
                if line.startswith("::add-mask::"):
                    continue
                shown = [v for v in values if v in line]
                assert not shown, f"{run.name}/{step.name} log line {number} shows a secret"
    for path in folder.rglob("*"):
        if path.is_file() and "tools" not in path.relative_to(folder).parts:
            data = path.read_bytes().decode("utf-8", "replace")
            if path.suffix != ".log":  # logs: checked line by line above
                assert not [v for v in values if v in data], f"{path} holds a secret"
    for request in github.requests:
        sent = json.dumps(request.body) + json.dumps(
            {k: v for k, v in request.headers.items() if k != "authorization"}
        )
        assert not [v for v in values if v in sent], f"{request.method} {request.path}"


def junit_cases(path: Path) -> dict[str, ET.Element]:
    """The merged JUnit's testcases by ``classname.name``; fails on a duplicate."""
    cases = list(ET.parse(path).getroot().iter("testcase"))
    names = [f"{case.get('classname')}.{case.get('name')}" for case in cases]
    assert len(set(names)) == len(names), "a test appears twice in the merged JUnit"
    return dict(zip(names, cases, strict=True))


def check_run(github: FakeGitHub) -> dict[str, Any]:
    """The one check run the build made (created in progress, updated, completed), as GitHub
    holds it after every request."""
    created = [r for r in github.requests if r.method == "POST"]
    assert [request.path for request in created] == [f"/repos/{REPOSITORY}/check-runs"]
    return github.check_run()


# --- the tests ---------------------------------------------------------------------------------


def test_no_input_is_spliced_into_a_script() -> None:
    # Inputs travel as environment variables; an expression in `run:` would be shell code.
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    for step in action["runs"]["steps"]:
        assert step.get("shell") == "bash"
        assert "${{" not in step["run"], step["name"]


def test_three_workers_and_a_summary_report_the_demo(
    workflow: Workflow, github: FakeGitHub, password_redis: ControlledRedis
) -> None:
    url, password = password_redis.url, password_redis.password
    assert password and password in url
    workflow.matrix(url, workers=3, summary={"check-name": "tests (queue)"})
    runs = workflow.run()

    for run in runs.values():
        assert_job_passed(run)
        install, ciqueue = run.steps
        assert install.log.startswith("::group::Install ciqueue-gha\n"), install.log
        assert_masks_first(ciqueue, [url, password, workflow.token])
    assert_log_well_formed(runs)
    assert_secrets_not_shown([url, password, workflow.token], runs, workflow.folder, github)

    # The install step put the package into the job's own Python, not beside it.
    summary_python = Path(workflow.jobs[-1].inputs["python"])
    where = subprocess.run(
        [str(summary_python), "-c", "import ciqueue_gha; print(ciqueue_gha.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=workflow.folder,
    ).stdout.strip()
    assert Path(where).is_relative_to(summary_python.parent.parent), where

    summary = runs["summary"]
    assert summary.outputs == {
        "total": str(DEMO_TESTS),
        "passed": "34",  # all but the skipped test and the expected failure
        "failed": "0",
        "flaky": "1",
        "conclusion": "success",
        "junit-path": "ciqueue-junit.xml",
    }
    assert check_run_step(summary).outputs == summary.outputs

    junit = workflow.jobs[-1].workspace / summary.outputs["junit-path"]
    cases = junit_cases(junit)
    assert len(cases) == DEMO_TESTS
    assert not [name for name, case in cases.items() if case.find("failure") is not None]
    flaky = cases["examples.demo.test_flaky_and_env.test_flaky_under_the_queue"]
    assert [child.tag for child in flaky] == ["flakyFailure"]
    assert flaky.get("file") == FAILING_FILE

    job_summary = summary.summary
    assert job_summary.startswith(f"## ciqueue-gha: build {workflow.run_id} attempt 1: ✅ passed")
    assert "| tests | passed | failed | errors | skipped | flaky | not run |" in job_summary
    assert f"| {DEMO_TESTS} | 34 | 0 | 0 | 2 | 1 | 0 |" in job_summary
    assert "### Flaky tests (1)" in job_summary
    assert "### Worker utilization" in job_summary
    rows = re.findall(r"^\| <code>(\d)</code> \| (\d+) \|", job_summary, re.MULTILINE)
    # A worker job that starts after the others emptied the queue runs nothing and has no
    # row (a loaded machine starts three jobs unevenly): the rows are the workers that ran.
    assert {worker for worker, _ in rows} <= {"0", "1", "2"} and rows, job_summary
    assert f"over {len(rows)} workers." in job_summary
    assert all(int(tests) > 0 for _, tests in rows), rows
    assert sum(int(tests) for _, tests in rows) == DEMO_TESTS + 1  # the flaky test twice
    for index in range(3):
        assert runs[f"worker-{index}"].summary == ""  # workers leave the summary to it

    created = check_run(github)
    assert created["head_sha"] == HEAD_SHA != MERGE_SHA
    assert created["name"] == "tests (queue)"
    assert created["status"] == "completed" and created["conclusion"] == "success"
    assert created["output"]["title"] == f"{DEMO_TESTS} tests, 34 passed, 2 skipped, 1 flaky"
    assert "annotations" not in created["output"]
    for request in github.requests:
        assert request.headers["authorization"] == f"Bearer {workflow.token}"


def test_a_failing_build_fails_the_summary_and_annotates_the_failing_line(
    workflow: Workflow, github: FakeGitHub, password_redis: ControlledRedis
) -> None:
    workflow.matrix(password_redis.url, workers=3, DEMO_FAIL="1")
    runs = workflow.run()
    # A failing assertion shows os.environ in its report: the secrets must not be in it.
    url, password = password_redis.url, str(password_redis.password)
    assert_secrets_not_shown([url, password, workflow.token], runs, workflow.folder, github)

    summary = runs["summary"]
    assert_job_passed(summary, code=1)
    # The worker whose run of the failing test was final fails its job; the others pass.
    assert sorted(runs[f"worker-{i}"].returncode for i in range(3)) == [0, 0, 1]
    assert_log_well_formed(runs)
    assert summary.outputs["conclusion"] == "failure"
    assert summary.outputs["failed"] == "1"
    assert summary.outputs["total"] == str(DEMO_TESTS)
    assert "❌ failed" in summary.summary.splitlines()[0]
    assert "### Failures (1)" in summary.summary

    created = check_run(github)
    assert created["head_sha"] == HEAD_SHA
    assert created["conclusion"] == "failure"
    assert created["output"]["title"] == (
        f"{DEMO_TESTS} tests, 33 passed, 1 failed, 2 skipped, 1 flaky"
    )
    (annotation,) = created["output"]["annotations"]
    assert annotation["path"] == FAILING_FILE
    assert annotation["start_line"] == annotation["end_line"] == failing_line()
    assert annotation["annotation_level"] == "failure"
    assert annotation["title"] == FAILING_TEST
    assert "DEMO_FAIL=1 asked this test to fail" in annotation["message"]
    # No fallback annotations when the check run took them.
    assert "::error" not in check_run_step(summary).log


def test_a_token_that_cannot_write_checks_annotates_the_log_instead(
    workflow: Workflow, github: FakeGitHub, redis_server: ControlledRedis
) -> None:
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    workflow.matrix(redis_server.url, workers=3, DEMO_FAIL="1")
    runs = workflow.run()

    summary = runs["summary"]
    assert_job_passed(summary, code=1)  # the build's own result, not the refusal's
    assert_log_well_formed(runs)
    assert len(github.requests) == 1, "a refusal is not retried"
    log = check_run_step(summary).log.splitlines()
    errors = [line for line in log if line.startswith("::error ")]
    assert len(errors) == 1, log
    properties = errors[0].removeprefix("::error ").split("::", 1)[0].split(",")
    assert f"file={FAILING_FILE}" in properties
    assert f"line={failing_line()}" in properties
    assert any(line.startswith("::notice::") and "checks" in line for line in log), log
    assert summary.outputs["conclusion"] == "failure"
    assert "### Failures (1)" in summary.summary


def test_run_mode_on_one_runner_passes_though_the_token_cannot_write_checks(
    workflow: Workflow, github: FakeGitHub
) -> None:
    # One runner, a private Redis (no redis-url), and a refused check run: the build passed,
    # so the step passes; a refusal never changes the result, either way.
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    workflow.job(
        "test",
        {"mode": "run", "workers": "2", "pytest-args": "examples/demo", **REQUEUE},
        demo=True,
    )
    runs = workflow.run()

    run = runs["test"]
    assert_job_passed(run)
    assert_log_well_formed(runs)  # the private redis-server stopped with the step
    assert_masks_first(check_run_step(run), [workflow.token])
    assert_secrets_not_shown([workflow.token], runs, workflow.folder, github)
    assert run.outputs["total"] == str(DEMO_TESTS)
    assert run.outputs["flaky"] == "1"
    assert run.outputs["conclusion"] == "success"
    assert (workflow.jobs[0].workspace / run.outputs["junit-path"]).is_file()
    assert "✅ passed" in run.summary.splitlines()[0]
    assert "over 2 workers." in run.summary
    created = check_run(github)  # sent (and valid) as the queue was populated, then refused
    assert created["head_sha"] == HEAD_SHA
    assert created["name"] == "ciqueue-gha"
    assert created["status"] == "in_progress"
    assert len(github.requests) == 1, "a refusal is not retried, nor the report sent after it"
    log = check_run_step(run).log.splitlines()
    assert any(line.startswith("::notice::") and "checks" in line for line in log), log
    assert not [line for line in log if line.startswith("::error")], log
