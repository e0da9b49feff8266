"""The static fallback (issue 14) end to end, through the CLI: workers without Redis run the
suite between them exactly as plain pytest does, each test once; an unreachable Redis falls
back alike and says so; the summary gathers the deliveries from a directory or from the run's
artifacts (the GitHub stand-in, every request and reply checked against GitHub's API
description) and reports as from Redis; a worker that never delivered is exit 3.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INFRASTRUCTURE, EXIT_PASSED
from ciqueue_gha.fallback.delivery import Delivery
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from tests.e2e.test_action import github as github  # the fixtures
from tests.e2e.test_runner import Commands, clean_env, cli, copy_suite, outcomes, plain_pytest
from tests.e2e.test_runner import commands as commands
from tests.support.fake_github import FakeGitHub, Reply
from tests.support.ports import reserve_port

LOUD = "WITHOUT THE QUEUE"
RUN_ID = "7001"
HEAD_SHA = "1f0e5c1d6a0b4c2e8f9a7b3d5c6e7f8091a2b3c4"


def fallback_worker(index: int, total: int, results: Path, *extra: str) -> list[str]:
    where = ["--results-dir", str(results), "--junit-xml", str(results / f"w{index}.xml")]
    share = ["--worker-index", str(index), "--worker-total", str(total)]
    return [*cli(), "worker", "--fallback", "static", *share, *where, *extra, "--", "."]


def delivered(results: Path) -> list[Delivery]:
    paths = sorted(results.glob("ciqueue-worker-*.json"))
    return [Delivery.from_json(path.read_text(), str(path)) for path in paths]


def test_three_workers_without_redis_run_each_test_once_as_plain_pytest(
    commands: Commands, tmp_path: Path
) -> None:
    suite, results = copy_suite("fixtures", tmp_path), tmp_path / "results"
    env = clean_env(tmp_path)
    plain_junit = tmp_path / "plain.xml"
    plain = commands.start(
        "plain", [*plain_pytest(), f"--junitxml={plain_junit}"], cwd=suite, env=env
    )
    workers = [
        commands.start(f"w{i}", fallback_worker(i, 3, results), cwd=suite, env=env)
        for i in range(3)
    ]
    codes = [worker.wait() for worker in workers]
    plain_code = plain.wait()
    for worker in workers:
        assert f"{LOUD}: static fallback (no Redis URL is configured)" in worker.output()
    union: dict[tuple[str, str], str] = {}
    for index in range(3):
        ran = outcomes(results / f"w{index}.xml")
        assert not set(ran) & set(union), "a test ran on two workers"
        union.update(ran)
    assert union == outcomes(plain_junit)
    assert max(codes) == plain_code == EXIT_FAILED and set(codes) <= {EXIT_PASSED, EXIT_FAILED}
    splits = [delivery.shares for delivery in delivered(results)]
    assert len(splits) == 3 and splits[0] == splits[1] == splits[2]

    merged = tmp_path / "merged.xml"
    argv = [*cli(), "summary", "--fallback", "static", "--results-dir", str(results)]
    summary = commands.run("summary", [*argv, "--junit-xml", str(merged)], cwd=suite, env=env)
    assert summary.process.returncode == plain_code, summary.output()
    assert LOUD in summary.output()
    assert outcomes(merged) == outcomes(plain_junit)
    suite = ET.parse(merged).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "pytest (without the queue: static fallback)"


def test_an_unreachable_redis_falls_back_longest_first(commands: Commands, tmp_path: Path) -> None:
    suite, results = copy_suite("durations", tmp_path), tmp_path / "results"
    seconds = {f"check_durations.py::test_sleep[{s}]": s for s in (0.0, 0.15, 0.5, 0.3)}
    times = tmp_path / "durations.json"
    times.write_text(json.dumps(seconds))
    nowhere = ["--redis-url", f"redis://127.0.0.1:{reserve_port()}", "--build-id", "fb"]
    extra = [*nowhere, "--durations-file", str(times)]
    env = clean_env(tmp_path)
    workers = [
        commands.start(f"w{i}", fallback_worker(i, 2, results, *extra), cwd=suite, env=env)
        for i in range(2)
    ]
    for worker in workers:
        assert worker.wait() == EXIT_PASSED, worker.output()
        assert f"{LOUD}: static fallback (cannot reach Redis at redis://127.0.0.1:" in (
            worker.output()
        )
        assert "longest first from recorded durations" in worker.output()
    ran = [[record.unit for record, _ in d.attempts] for d in delivered(results)]
    longest = sorted(seconds, key=seconds.__getitem__, reverse=True)
    assert ran == [longest[:1], longest[1:]]  # 0.5 s alone, 0.3 + 0.15 + 0 beside it

    off = [*cli(), "worker", *nowhere, "--", "."]
    refused = commands.run("off", off, cwd=suite, env=env)
    assert refused.process.returncode == EXIT_INFRASTRUCTURE
    assert LOUD not in refused.output()


def test_failed_tests_are_requeued_within_the_worker(commands: Commands, tmp_path: Path) -> None:
    demo, results = Path(__file__).resolve().parents[2] / "examples" / "demo", tmp_path / "res"
    env = clean_env(tmp_path, CIQUEUE_BUILD_ID="requeue-within")
    argv = fallback_worker(0, 1, results, "--max-requeues", "1", "--requeue-tolerance", "0.1")
    worker = commands.run(
        "w0", [*argv[:-1], str(demo / "test_flaky_and_env.py")], cwd=tmp_path, env=env
    )
    assert worker.process.returncode == EXIT_PASSED, worker.output()
    (delivery,) = delivered(results)
    flaky = [
        (r.outcome, d)
        for r, d in delivery.attempts
        if r.unit.endswith("test_flaky_under_the_queue")
    ]
    assert flaky == [("failed", "requeued"), ("passed", "final")]
    case = (
        ET.parse(results / "w0.xml")
        .getroot()
        .find(".//testcase[@name='test_flaky_under_the_queue']")
    )
    assert case is not None and case.find("flakyFailure") is not None


# --- the summary against the GitHub stand-in ---------------------------------------------------


def delivery(index: int, total: int, outcome: str = "passed") -> Delivery:
    shares = [[f"check_{i}.py::test_{n}" for n in range(2)] for i in range(total)]
    attempts = []
    for lease, unit in enumerate(shares[index], 1):
        failed = outcome == "failed" and unit.endswith("_1")
        case = CaseRecord(
            unit, "failed" if failed else "passed", 0.1, "assert 1 == 2" if failed else "",
            "E assert 1 == 2" if failed else "", unit.split("::")[0], 3,
        )  # fmt: skip
        record = AttemptRecord(unit, case.outcome, f"w{index}", lease, 0.1, cases=[case])
        attempts.append((record, "final"))
    return Delivery(index, total, f"w{index}", shares, attempts)


def publish_run(github: FakeGitHub, deliveries: list[Delivery], total: int) -> None:
    """The run as the summary finds it: every worker job ended, `deliveries` uploaded."""
    for index in range(total):
        job = github.actions.add_job(RUN_ID, 1, f"worker ({index})", f"runner-{index}")
        github.actions.end_job(job, "success")
    github.actions.add_job(RUN_ID, 1, "summary", "runner-summary")
    for one in deliveries:
        files = {f"ciqueue-worker-{one.index}.json": one.to_json().encode()}
        github.actions.upload(RUN_ID, f"ciqueue-results-1-{one.index}", files)


def summary_env(tmp: Path, github: FakeGitHub) -> dict[str, str]:
    event = tmp / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": HEAD_SHA}}}))
    (tmp / "summary.md").touch()
    (tmp / "output").touch()
    return clean_env(
        tmp,
        GITHUB_ACTIONS="true",
        GITHUB_RUN_ID=RUN_ID,
        GITHUB_RUN_ATTEMPT="1",
        GITHUB_REPOSITORY="octo-org/octo-repo",
        GITHUB_API_URL=github.url,
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
        GITHUB_OUTPUT=str(tmp / "output"),
        RUNNER_NAME="runner-summary",
        CIQUEUE_GITHUB_TOKEN="ghs_fallbacktoken0123456789",
    )


def run_summary(commands: Commands, tmp: Path, github: FakeGitHub) -> tuple[int, str]:
    argv = [*cli(), "summary", "--fallback", "static", "--junit-xml", str(tmp / "merged.xml")]
    done = commands.run("summary", argv, cwd=tmp, env=summary_env(tmp, github))
    return done.process.returncode, done.output()


def test_the_summary_gathers_the_artifacts_and_reports_as_from_redis(
    commands: Commands, tmp_path: Path, github: FakeGitHub
) -> None:
    publish_run(github, [delivery(0, 3), delivery(1, 3, "failed"), delivery(2, 3)], 3)
    code, output = run_summary(commands, tmp_path, github)
    assert code == EXIT_FAILED, output
    assert "::warning::ciqueue-gha: WITHOUT THE QUEUE: static fallback" in output
    assert "6 tests, 5 passed, 1 failed" in output
    assert outcomes(tmp_path / "merged.xml")[("check_1", "test_1")] == "failed"
    (check_run,) = [r.body for r in github.requests if r.method == "POST"]
    assert check_run["output"]["title"].startswith("Without the queue: 6 tests")
    assert check_run["conclusion"] == "failure"
    assert check_run["output"]["annotations"][0]["path"] == "check_1.py"
    assert "Ran without the queue" in (tmp_path / "summary.md").read_text()
    gets = [r.path for r in github.requests if r.method == "GET"]
    assert any("/attempts/1/jobs" in path for path in gets)
    assert sum("/zip" in path for path in gets) == 3


def test_a_worker_that_never_delivered_is_incomplete_and_named(
    commands: Commands, tmp_path: Path, github: FakeGitHub
) -> None:
    publish_run(github, [delivery(0, 3), delivery(1, 3)], 3)
    github.script.append(Reply(403, {"message": "Resource not accessible by integration"}))
    code, output = run_summary(commands, tmp_path, github)
    assert code == EXIT_INCOMPLETE, output
    assert "worker 2 of 3 never delivered its results: its share (2 units)" in output
    assert "NOT RUN check_2.py::test_0" in output and "NOT RUN check_2.py::test_1" in output
    assert "this token cannot write checks" in output  # a fork's token: annotations instead
    outputs = (tmp_path / "output").read_text()
    assert "incomplete" in outputs


def test_a_token_that_cannot_read_the_artifacts_is_exit_4(
    commands: Commands, tmp_path: Path, github: FakeGitHub
) -> None:
    github.actions.refuse = 403
    code, output = run_summary(commands, tmp_path, github)
    assert code == EXIT_INFRASTRUCTURE, output
    assert "the token needs `actions: read`" in output
    assert "Traceback" not in output and "ghs_fallbacktoken" not in output
