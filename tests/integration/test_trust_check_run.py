"""The check run of a build with classified failures (tests/golden/trust) is one GitHub takes:
the stand-in validates every body against GitHub's API description."""

from __future__ import annotations

import json

from ciqueue_gha.errors import EXIT_PASSED
from ciqueue_gha.github.checks import CheckRunReport, ChecksClient
from ciqueue_gha.report.annotations import annotations_for
from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.markdown import render_job_summary
from ciqueue_gha.truncate import CHECK_SUMMARY_LIMIT
from tests.golden.regenerate import GOLDEN, load_records, trust_of
from tests.integration.test_checks_api import SHA, client, fake_time, github  # noqa: F401
from tests.support.fake_github import FakeGitHub


def golden_report(name: str) -> BuildReport:
    description = json.loads((GOLDEN / name / "input.json").read_text(encoding="utf-8"))
    report = BuildReport.from_records(load_records(description))
    report.trust = trust_of(report, description["trust"])
    return report


def test_a_classified_build_posts_a_check_run_github_takes(
    github: FakeGitHub,  # noqa: F811
    client: ChecksClient,  # noqa: F811
) -> None:
    report = golden_report("trust")
    check = CheckRunReport(
        name="ciqueue-gha",
        head_sha=SHA,
        conclusion="success" if report.exit_code == EXIT_PASSED else "failure",
        title=report.title,
        summary=render_job_summary(report, build="4242 attempt 1", limit=CHECK_SUMMARY_LIMIT),
        annotations=annotations_for(report),
    )

    client.publish(check)

    output = github.requests[0].body["output"]
    assert output["title"] == "7 tests, 1 passed, 6 failed, 1 quarantined"
    assert "### Quarantined failures, not failing the build (1)" in output["summary"]
    levels = [annotation["annotation_level"] for annotation in output["annotations"]]
    assert levels == ["failure", "failure", "failure", "warning", "failure", "failure"]
    assert github.requests[0].body["conclusion"] == "failure"
