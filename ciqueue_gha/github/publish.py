"""Reporting a finished build to GitHub: step outputs, the job summary, and a check run.

Where the token cannot write checks (fork pull requests, no `checks: write`), the failures
go out as workflow-command annotations instead. Nothing here changes the build's result:
a report that cannot be posted is a warning, never a failed build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_FAILED, EXIT_PASSED
from ..protocol.keys import BuildKeys
from ..report.annotations import annotations_for
from ..report.build import BuildReport
from ..report.markdown import render_job_summary
from ..truncate import CHECK_SUMMARY_LIMIT, JOB_SUMMARY_LIMIT
from .checks import CheckRunReport, ChecksClient, ChecksForbidden, ChecksUnavailable
from .env import GitHubEnv
from .workflow import WorkflowCommands, workflow_annotations


@dataclass(frozen=True)
class FinishedBuild:
    """What the summary knows once it stops waiting: the report and how it ended."""

    report: BuildReport
    keys: BuildKeys
    exit_code: int
    verdict_text: str | None  # why it stopped waiting, when not every test finished
    junit_path: Path

    @property
    def title(self) -> str:
        """The check run's title: the build in one line."""
        return self.report.title

    @property
    def conclusion(self) -> str:
        """success, failure, or incomplete (tests did not run, or the queue failed)."""
        if self.exit_code == EXIT_PASSED:
            return "success"
        return "failure" if self.exit_code == EXIT_FAILED else "incomplete"

    def summary(self, limit: int) -> str:
        build = f"{self.keys.build_id} attempt {self.keys.attempt}"
        return render_job_summary(
            self.report, build=build, verdict_text=self.verdict_text, limit=limit
        )


def write_outputs(build: FinishedBuild, commands: WorkflowCommands) -> None:
    """The step outputs: the counts (as the job summary counts them), the conclusion and
    where the merged JUnit file is."""
    report = build.report
    outputs = {
        "total": report.total,
        "passed": report.count("passed"),
        "failed": report.failed,
        "flaky": len(report.flaky),
        "conclusion": build.conclusion,
        "junit-path": build.junit_path,
    }
    for name, value in outputs.items():
        commands.set_output(name, str(value))


def publish(
    build: FinishedBuild,
    github: GitHubEnv,
    commands: WorkflowCommands,
    *,
    token: str | None,
    check_name: str,
) -> None:
    """Step outputs, the job summary, and the check run (or annotations in its place)."""
    write_outputs(build, commands)
    commands.append_summary(build.summary(limit=JOB_SUMMARY_LIMIT))
    if not github.in_actions:
        return
    annotations = annotations_for(build.report)
    if not token or not github.head_sha:
        commands.notice("ciqueue-gha: no token or commit for a check run; annotations instead")
        workflow_annotations(annotations, commands)
        return
    report = CheckRunReport(
        name=check_name,
        head_sha=github.head_sha,
        conclusion="success" if build.conclusion == "success" else "failure",
        title=build.title,
        summary=build.summary(limit=CHECK_SUMMARY_LIMIT),
        annotations=annotations,
    )
    try:
        ChecksClient(github.api_url, github.repository, token).publish(report)
    except ChecksForbidden:
        commands.notice(
            "ciqueue-gha: this token cannot write checks (a fork's pull request, or no "
            "`checks: write`): the failures are annotated here and in the job summary instead"
        )
        workflow_annotations(annotations, commands)
    except ChecksUnavailable as exc:
        commands.warning(f"ciqueue-gha: the check run was not posted: {exc}")
        workflow_annotations(annotations, commands)
