"""examples/workflows/matrix.yml, unchanged, run through the action runner
(tests/support/actions_runner.py) for both kinds of pull request (issue 14):

- from the same repository: the secret holds a Redis URL, the workers share the queue and
  the summary posts the check run;
- from a fork: no secrets, so no Redis URL; the workers fall back to their static shares and
  upload their results, the summary gathers them from the run's artifacts (the GitHub
  stand-in, every request and reply checked against GitHub's description), and reports with
  the fork's read-only token: annotations and the job summary, the build green.

The workflow's own steps around the action are played as GitHub would: checkout and Python
are the job's workspace and venv (tests/e2e/test_action.py's), ``actions/upload-artifact``
uploads the step's ``path`` under its ``name`` to the stand-in. Every ``with:`` value is the
workflow's, its expressions evaluated against the job's contexts (secrets, strategy, github,
steps); the demo suite sits where the workflow's ``pytest-args`` looks, ``tests/``.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_action import (
    DEMO,
    DEMO_TESTS,
    Workflow,
    assert_log_well_formed,
    assert_secrets_not_shown,
    check_runs,
)
from tests.e2e.test_action import github as github  # the fixtures
from tests.e2e.test_action import workflow as workflow
from tests.support.action_checkout import NOT_IN_CHECKOUT
from tests.support.actions_runner import Job, JobRun, evaluate
from tests.support.fake_github import FakeGitHub, Reply
from tests.support.redis_server import ControlledRedis

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflows" / "matrix.yml"
OUR_ACTION = "your-org/ciqueue-gha@v1"
UPLOAD = "actions/upload-artifact@v4"
#: The step conditions the example may use: all true in a run nobody cancels.
ALWAYS = {"${{ !cancelled() }}", "${{ always() }}"}


class ExampleRun:
    """The example's jobs on `workflow`, with `secrets` as the event gets them."""

    def __init__(self, workflow: Workflow, github: FakeGitHub, secrets: dict[str, str]) -> None:
        self.workflow, self.github, self.secrets = workflow, github, secrets
        self.spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["jobs"]
        self.planned: list[tuple[Job, dict[str, Any], dict[str, Any]]] = []

    def prepare(self) -> None:
        matrix = self.spec["worker"]["strategy"]["matrix"]["index"]
        for index, value in enumerate(matrix):
            contexts = self.contexts(index, len(matrix), {"index": value})
            self.add(self.spec["worker"], f"worker-{index}", contexts, demo=True)
        self.add(self.spec["summary"], "summary", self.contexts(0, 1, {}), demo=False)

    def contexts(self, index: int, total: int, matrix: dict[str, Any]) -> dict[str, Any]:
        strategy = {"job-index": str(index), "job-total": str(total)}
        github = {**self.workflow.runner.github, "run_attempt": "1"}
        return {"secrets": self.secrets, "strategy": strategy, "matrix": matrix, "github": github}

    def add(self, spec: dict[str, Any], name: str, contexts: dict[str, Any], demo: bool) -> None:
        steps = spec["steps"]
        ours = next(step for step in steps if step.get("uses") == OUR_ACTION)
        runner = f"runner-{name}"
        job = self.workflow.job(name, inputs(ours, contexts), demo=demo, RUNNER_NAME=runner)
        if demo:  # where the example's `pytest-args: tests/` looks
            shutil.copytree(DEMO, job.workspace / "tests", ignore=NOT_IN_CHECKOUT)
        api_job = self.github.actions.add_job(self.workflow.run_id, 1, name, runner)
        self.planned.append((job, {"steps": steps, "ours": ours}, {**contexts, "job": api_job}))

    def run(self) -> dict[str, JobRun]:
        runs: dict[str, JobRun] = {}
        threads = [
            threading.Thread(target=lambda p=plan: runs.update([self.run_job(*p)]))
            for plan in self.planned
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runs) == len(self.planned), "a job's thread failed: see its output"
        return runs

    def run_job(
        self, job: Job, steps: dict[str, Any], contexts: dict[str, Any]
    ) -> tuple[str, JobRun]:
        run = self.workflow.runner.run_job(job)
        after = steps["steps"][steps["steps"].index(steps["ours"]) + 1 :]
        done = {**contexts, "steps": {steps["ours"].get("id", ""): {"outputs": run.outputs}}}
        for step in after:
            assert step.get("uses") == UPLOAD and step.get("if") in ALWAYS, step
            self.upload(job, inputs(step, done))
        conclusion = "failure" if run.returncode else "success"
        self.github.actions.end_job(contexts["job"], conclusion)
        return job.name, run

    def upload(self, job: Job, given: dict[str, str]) -> None:
        """actions/upload-artifact: the files at `path`, as artifact `name`."""
        path = job.workspace / given["path"]
        files = (
            {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}
            if path.is_dir()
            else ({path.name: path.read_bytes()} if path.is_file() else {})
        )
        if not files:
            assert given.get("if-no-files-found") == "ignore", f"nothing at {path}"
            return
        self.github.actions.upload(self.workflow.run_id, given["name"], files)


def inputs(step: dict[str, Any], contexts: dict[str, Any]) -> dict[str, str]:
    return {name: evaluate(str(value), contexts) for name, value in step["with"].items()}


def test_a_same_repository_pull_request_runs_on_the_queue(
    workflow: Workflow, github: FakeGitHub, redis_server: ControlledRedis
) -> None:
    example = ExampleRun(workflow, github, {"CIQUEUE_REDIS_URL": redis_server.url})
    example.prepare()
    runs = example.run()
    for run in runs.values():
        assert run.returncode == 0, run.describe()
        assert "WITHOUT THE QUEUE" not in run.describe()
    assert runs["summary"].outputs["total"] == str(DEMO_TESTS)
    assert runs["summary"].outputs["conclusion"] == "success"
    (created,) = check_runs(github)
    assert created["conclusion"] == "success"
    assert not created["output"]["title"].startswith("Without the queue")
    uploaded = [a["name"] for a in github.actions.artifacts[workflow.run_id]]
    assert uploaded == ["junit"]  # on the queue the workers deliver nothing
    assert_log_well_formed(runs)


def test_a_fork_pull_request_runs_without_the_queue_and_reports(
    workflow: Workflow, github: FakeGitHub
) -> None:
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    example = ExampleRun(workflow, github, {"CIQUEUE_REDIS_URL": ""})
    example.prepare()
    runs = example.run()
    workers = [runs[name] for name in runs if name.startswith("worker-")]
    for run in runs.values():
        assert run.returncode == 0, run.describe()
        assert "::warning::ciqueue-gha: WITHOUT THE QUEUE: static fallback" in run.describe()
    names = sorted(a["name"] for a in github.actions.artifacts[workflow.run_id])
    assert names == sorted(["junit", *(f"ciqueue-results-1-{i}" for i in range(len(workers)))])
    summary = runs["summary"]
    assert summary.outputs["total"] == str(DEMO_TESTS)
    assert summary.outputs["conclusion"] == "success" and summary.outputs["flaky"] == "1"
    assert "Ran without the queue" in summary.summary
    assert "this token cannot write checks" in summary.describe()
    assert_log_well_formed(runs)
    assert_secrets_not_shown([workflow.token], runs, workflow.folder, github)
