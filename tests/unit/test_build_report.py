"""The facts a build's report answers, which every output reads (none counts for itself),
and the job's environment the GitHub side reads them with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INCOMPLETE, UsageError
from ciqueue_gha.github.env import GitHubEnv
from ciqueue_gha.github.publish import FinishedBuild, write_outputs
from ciqueue_gha.github.workflow import WorkflowCommands
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import CaseRecord
from ciqueue_gha.report.build import BuildReport, CaseHistory, NotRun


def history(nodeid: str, outcome: str, *, failed_before: int = 0) -> CaseHistory:
    earlier = [CaseRecord(nodeid, "failed")] * failed_before
    return CaseHistory(CaseRecord(nodeid, outcome), nodeid, "w1", earlier)


def report() -> BuildReport:
    cases = [
        history("t.py::a", "passed"),
        history("t.py::b", "passed", failed_before=2),
        history("t.py::c", "failed"),
        history("t.py::d", "error"),
        history("t.py::e", "skipped"),
    ]
    return BuildReport(cases, ["t.py::lost"], {}, 6, strays={"u.py::z": "w2", "u.py::y": "w3"})


def test_not_run_lists_queued_units_first_then_strays_by_id() -> None:
    assert report().not_run == [
        NotRun("t.py::lost"),
        NotRun("u.py::y", "w3"),
        NotRun("u.py::z", "w2"),
    ]
    assert [test.why() for test in report().not_run] == [
        "no worker finished it",
        "collected by w3 only, never queued",
        "collected by w2 only, never queued",
    ]
    assert NotRun("u.py::y", "w3").why(lambda worker: f"<{worker}>") == (
        "collected by <w3> only, never queued"
    )


def test_counts_and_title() -> None:
    build = report()
    assert (build.failed, build.total, len(build.flaky)) == (2, 8, 1)
    assert build.title == "5 tests, 2 passed, 2 failed, 1 skipped, 1 flaky, 3 not run"
    assert BuildReport([history("t.py::a", "passed")], [], {}, 1).title == "1 tests, 1 passed"


def test_a_stray_alone_makes_the_build_incomplete() -> None:
    stray = BuildReport([history("t.py::a", "failed")], [], {}, 1, strays={"u.py::z": "w2"})
    assert stray.exit_code == EXIT_INCOMPLETE
    assert BuildReport([history("t.py::a", "failed")], [], {}, 1).exit_code == EXIT_FAILED


def test_step_outputs_are_the_reports_counts(tmp_path: Path) -> None:
    output = tmp_path / "output"
    build = FinishedBuild(report(), BuildKeys("b"), EXIT_INCOMPLETE, None, Path("j.xml"))
    write_outputs(build, WorkflowCommands(None, {"GITHUB_OUTPUT": str(output)}))
    text = output.read_text(encoding="utf-8")
    values = dict(zip(text.splitlines()[::3], text.splitlines()[1::3], strict=True))
    assert {name.split("<<")[0]: value for name, value in values.items()} == {
        "total": "8",
        "passed": "2",
        "failed": "2",
        "flaky": "1",
        "conclusion": "incomplete",
        "junit-path": "j.xml",
    }


def test_the_environment_of_a_pull_request_job(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": "head"}}}), encoding="utf-8")
    github = GitHubEnv.from_environ(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_RUN_ID": "7",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SHA": "merge",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_WORKSPACE": "/w",
        }
    )
    assert (github.runner, github.in_actions, github.head_sha) == (True, True, "head")
    assert (github.workspace, github.attempt) == ("/w", 1)


def test_an_unreadable_event_or_a_bad_attempt() -> None:
    github = GitHubEnv.from_environ(
        {"GITHUB_SHA": "s", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": "/nope"}
    )
    assert (github.runner, github.head_sha) == (False, "s")
    with pytest.raises(UsageError, match="GITHUB_RUN_ATTEMPT='x' is not an attempt number"):
        _ = GitHubEnv.from_environ({"GITHUB_RUN_ATTEMPT": "x"}).attempt
