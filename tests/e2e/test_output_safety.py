"""Finding 3 of issue 10: text a test controls never becomes a workflow command.

The hostile suite (suites/hostile) fails tests whose messages, tracebacks, captured output
and ids hold ``::stop-commands::``, ``::add-mask::``, ``::error title=...::``, the older
``##[error]`` syntax, ``%`` escapes and a lone CR, and writes them straight to the worker's
file descriptors from its conftest. Run through ``run``, through ``worker`` x2 + ``summary``
and through the action, under a runner (``GITHUB_ACTIONS=true``), each step's output is
parsed as the runner parses it (tests/support/runner_log.py): only the tool's own commands
run, every stop-commands block is closed, stderr holds nothing that could be a command; and
the job summary and the check run show the hostile text as the tests wrote it.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ciqueue_gha.errors import EXIT_FAILED
from tests.e2e.test_action import Workflow, workflow
from tests.e2e.test_runner import Command, Commands, clean_env, cli, commands, new_build_id
from tests.support.actions_runner import wait_group_empty
from tests.support.fake_github import FakeGitHub, Reply
from tests.support.runner_log import Command as RunnerCommand
from tests.support.runner_log import commands as runner_commands
from tests.support.runner_log import open_block, without_blocks

# Fixtures shared with test_runner and test_action.
__all__ = ["commands", "workflow"]

pytestmark = pytest.mark.slow

#: Longest the processes a dead worker leaves (its guard, its heartbeat helper) may take to end.
GROUP_GONE = 30.0

SUITE = Path(__file__).resolve().parent / "suites" / "hostile"
sys.path.insert(0, str(SUITE))
from hostile_text import HOSTILE, IDS, MARKERS  # noqa: E402

#: Failing tests of check_hostile.py; test_flaky fails once, then passes when requeued.
FAILING = 2 + len(IDS)
REQUEUE = ["--max-requeues", "1", "--requeue-tolerance", "1"]
REPOSITORY = "octo-org/octo-repo"
SHA = "1f0e5c1d6a0b4c2e8f9a7b3d5c6e7f8091a2b3c4"


def copy_suite(tmp: Path) -> Path:
    return Path(shutil.copytree(SUITE, tmp / "hostile"))


def runner_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A step's environment on a runner: its summary and output files in `tmp`."""
    return clean_env(
        tmp,
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
        GITHUB_OUTPUT=str(tmp / "output"),
        **extra,
    )


def own_commands(command: Command) -> list[RunnerCommand]:
    """The commands the runner would run reading `command`'s output, its blocks left out;
    fails if a block is left open or stderr holds anything that could be a command (the
    runner reads the two streams apart, so a block must be on one)."""
    out = command.stdout.read_text(encoding="utf-8", errors="replace")
    err = command.stderr.read_text(encoding="utf-8", errors="replace")
    assert runner_commands(err) == [], f"{command.name}: stderr holds commands:\n{err}"
    found = runner_commands(out)
    assert open_block(found) is None, f"{command.name}: a stop-commands block left open"
    return without_blocks(found)


def assert_shows_hostile_text(text: str, where: str) -> None:
    missing = [marker for marker in MARKERS if marker not in text]
    assert not missing, f"{where} lost {missing}:\n{text[:3000]}"


# --- run --------------------------------------------------------------------------------------


def test_run_under_a_runner_runs_no_command_of_the_tests(
    commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite(tmp_path)
    argv = [*cli(), "run", "--workers", "2", *REQUEUE, "--log-dir", str(tmp_path / "logs")]
    argv += ["--junit-xml", str(tmp_path / "merged.xml"), "--", "check_hostile.py"]
    run = commands.run("run", argv, cwd=suite, env=runner_env(tmp_path))

    assert run.process.returncode == EXIT_FAILED, run.output()
    assert own_commands(run) == []  # outside a workflow run: no annotations, no check run
    out = run.stdout.read_text()
    assert "--- worker-0.log ---" in out  # the log tails were shown, in a block
    assert "::add-mask::the" in out and "FLAKY check_hostile.py::test_flaky[" in out
    assert "Traceback (most recent" not in run.stderr.read_text()
    assert_shows_hostile_text((tmp_path / "summary.md").read_text(), "the job summary")


# --- worker x2 + summary, reporting to GitHub ----------------------------------------------------


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    yield server
    server.stop()
    assert not server.invalid, f"bodies GitHub would refuse: {server.invalid}"


def workflow_env(tmp: Path, github: FakeGitHub, job: str) -> dict[str, str]:
    folder = tmp / job
    folder.mkdir()
    env = runner_env(
        folder,
        GITHUB_RUN_ID="77",
        GITHUB_RUN_ATTEMPT="1",
        GITHUB_REPOSITORY=REPOSITORY,
        GITHUB_SHA=SHA,
        GITHUB_EVENT_NAME="push",
        GITHUB_API_URL=github.url,
        GITHUB_WORKSPACE=str(tmp / "hostile"),
        CIQUEUE_GITHUB_TOKEN="ghs_not_a_real_token_0123456789",
    )
    env["TMPDIR"] = str(tmp)  # one flaky marker for both workers
    return env


def run_matrix(
    commands: Commands, tmp: Path, github: FakeGitHub, redis_url: str
) -> tuple[list[Command], Command]:
    suite = copy_suite(tmp)
    build = ["--redis-url", redis_url, "--build-id", new_build_id("hostile")]
    summary = commands.start(
        "summary",
        [*cli(), "summary", *build, "--inactive-workers-timeout", "60"],
        cwd=suite,
        env=workflow_env(tmp, github, "summary"),
    )
    workers = [
        commands.start(
            f"worker-{index}",
            [
                *cli(),
                "worker",
                *build,
                "--worker-id",
                str(index),
                *REQUEUE,
                "--",
                "check_hostile.py",
            ],
            cwd=suite,
            env=workflow_env(tmp, github, f"worker-{index}"),
        )
        for index in range(2)
    ]
    for worker in workers:
        worker.wait()
    summary.wait()
    return workers, summary


def annotations_sent(github: FakeGitHub) -> list[dict[str, Any]]:
    """Every annotation sent to the check run (refused or not)."""
    return [a for r in github.requests for a in r.body["output"].get("annotations", [])]


@pytest.mark.parametrize("checks", ["written", "forbidden"])
def test_workers_and_summary_run_only_their_own_commands(
    commands: Commands, tmp_path: Path, github: FakeGitHub, redis_url: str, checks: str
) -> None:
    if checks == "forbidden":  # a fork's pull request: annotations as workflow commands
        github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    workers, summary = run_matrix(commands, tmp_path, github, redis_url)
    everything = "\n".join(c.output() for c in commands.started)

    assert summary.process.returncode == EXIT_FAILED, everything
    assert sorted(w.process.returncode for w in workers) in ([0, 1], [1, 1]), everything
    for worker in workers:
        assert own_commands(worker) == [], worker.output()
        assert "::add-mask::the" in worker.stdout.read_text()  # shown, inside the block

    own = own_commands(summary)
    titles = {f"check_hostile.py::test_id[{i}]" for i in IDS}
    if checks == "written":
        assert own == []
        final = github.check_run()  # created in progress, completed with the final report
        assert final["status"] == "completed"
        assert_shows_hostile_text(final["output"]["summary"], "the check run's summary")
        annotations = annotations_sent(github)
        assert len(annotations) == FAILING
        for annotation in annotations:
            assert_shows_hostile_text(annotation["message"], "an annotation")
        assert {a["title"] for a in annotations} >= titles
    else:  # refused as the queue was populated: asked once, annotated in the log
        assert [r.method for r in github.requests] == ["POST"]
        assert [c.name for c in own] == ["notice", *["error"] * FAILING], own
        errors = own[1:]
        for error in errors:
            assert_shows_hostile_text(error.data, "a workflow annotation")
            assert error.properties["file"] == "check_hostile.py"
            assert int(error.properties["line"]) > 0
        assert {e.properties["title"] for e in errors} >= titles

    assert_shows_hostile_text((tmp_path / "summary" / "summary.md").read_text(), "job summary")
    assert HOSTILE.count("\n") > 5  # the text is what it claims to be


def test_the_parser_sees_what_an_unprotected_log_would_run() -> None:
    # Without the blocks, the hostile text runs commands: the checks above can fail.
    found = runner_commands(f"FAILED x - message{HOSTILE}\n")
    assert {"stop-commands"} <= {c.name for c in found}
    unprotected = runner_commands(HOSTILE.replace("::stop-commands::x", ""))
    assert {"add-mask", "error", "warning", "notice", "set-output"} <= {c.name for c in unprotected}


# --- the action: two worker jobs and a summary job, as the runner runs them -------------------


def test_the_action_runs_only_its_own_commands(
    workflow: Workflow, github: FakeGitHub, redis_url: str
) -> None:
    # The token cannot write checks (a fork's pull request): annotations go to the log.
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    for index in range(2):
        job = workflow.job(
            f"worker-{index}",
            {
                "mode": "worker",
                "redis-url": redis_url,
                "worker-id": str(index),
                "pytest-args": "hostile/check_hostile.py",
                "junit-xml": "",
                "max-requeues": "1",
                "requeue-tolerance": "1",
            },
            demo=False,
        )
        copy_suite(job.workspace)
    workflow.job("summary", {"mode": "summary", "redis-url": redis_url}, demo=False)
    runs = workflow.run()

    summary = runs["summary"]
    assert summary.returncode == EXIT_FAILED, summary.describe()
    for name, run in runs.items():
        log = run.step("ciqueue").log
        found = runner_commands(log)
        assert open_block(found) is None, f"{name}: a block left open:\n{log}"
        own = [c.name for c in without_blocks(found) if c.name != "add-mask"]
        expected = ["notice", *["error"] * FAILING] if name == "summary" else []
        assert own == ["group", *expected, "endgroup"], f"{name}:\n{log}"
        masked = {c.data for c in found if c.name == "add-mask"}
        assert masked == {redis_url, workflow.token}, masked  # the tool's masks, no test's
    assert (
        "::add-mask::the"
        in runs["worker-0"].step("ciqueue").log + runs["worker-1"].step("ciqueue").log
    )
    errors = [c for c in runner_commands(summary.step("ciqueue").log) if c.name == "error"]
    for error in errors:
        assert_shows_hostile_text(error.data, "a workflow annotation")
    assert {e.properties["title"] for e in errors} >= {
        f"check_hostile.py::test_id[{i}]" for i in IDS
    }
    assert_shows_hostile_text(summary.summary, "the job summary")
    # Refused as the queue was populated: asked once, never again with the report.
    assert [r.method for r in github.requests] == ["POST"]


def test_a_worker_that_dies_in_a_test_leaves_no_block_open(
    commands: Commands, tmp_path: Path, redis_url: str
) -> None:
    # An open block would silence the job's later steps: their annotations and masks.
    suite = copy_suite(tmp_path)
    build = ["--redis-url", redis_url, "--build-id", new_build_id("dies")]
    argv = [*cli(), "worker", *build, "--", "-s", "check_dies.py"]
    worker = commands.run("worker", argv, cwd=suite, env=runner_env(tmp_path))
    # As the runner reads a step's output until every process writing it is gone: the
    # worker's guard ends the block after the worker died, however loaded the machine.
    assert wait_group_empty(worker.process.pid, timeout=GROUP_GONE) == []

    assert worker.process.returncode == -signal.SIGKILL, worker.output()
    assert own_commands(worker) == []
    assert "about to die" in worker.stdout.read_text()
