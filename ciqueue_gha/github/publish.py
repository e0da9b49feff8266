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
from ..queue.record import BuildRecord
from ..report.annotations import annotations_for, workflow_annotations
from ..report.markdown import render_job_summary
from ..report.outcome import BuildOutcome
from ..report.utilization import worker_usage
from .checks import CheckRunReport, ChecksClient, ChecksForbidden, ChecksUnavailable
from .env import GitHubEnv
from .workflow import WorkflowCommands

#: Bytes of Markdown in the check run's summary (the API takes 65,535 characters).
CHECK_SUMMARY_LIMIT = 60_000


@dataclass(frozen=True)
class FinishedBuild:
    """What the summary knows once it stops waiting."""

    outcome: BuildOutcome
    records: list[BuildRecord]
    keys: BuildKeys
    exit_code: int
    verdict_text: str | None  # why it stopped waiting, when not every test finished
    junit_path: Path

    @property
    def conclusion(self) -> str:
        """success, failure, or incomplete (tests did not run, or the queue failed)."""
        if self.exit_code == EXIT_PASSED:
            return "success"
        return "failure" if self.exit_code == EXIT_FAILED else "incomplete"

    @property
    def title(self) -> str:
        outcome = self.outcome
        failed = outcome.count("failed") + outcome.count("error")
        # Counted as the job summary and the `passed` output count: skips are no passes.
        skipped = outcome.count("skipped")
        parts = [f"{len(outcome.cases)} tests", f"{outcome.count('passed')} passed"]
        parts += [f"{failed} failed"] if failed else []
        parts += [f"{skipped} skipped"] if skipped else []
        parts += [f"{len(outcome.flaky)} flaky"] if outcome.flaky else []
        not_run = len(outcome.missing) + len(outcome.strays)
        parts += [f"{not_run} not run"] if not_run else []
        return ", ".join(parts)

    def summary(self, limit: int) -> str:
        usage = worker_usage(self.records)
        build = f"{self.keys.build_id} attempt {self.keys.attempt}"
        return render_job_summary(
            self.outcome, usage, build=build, verdict_text=self.verdict_text, limit=limit
        )


def write_outputs(build: FinishedBuild, commands: WorkflowCommands) -> None:
    outcome = build.outcome
    failed = outcome.count("failed") + outcome.count("error")
    outputs = {
        "total": len(outcome.cases) + len(outcome.missing) + len(outcome.strays),
        "passed": outcome.count("passed"),
        "failed": failed,
        "flaky": len(outcome.flaky),
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
    commands.append_summary(build.summary(limit=1024 * 1024))
    if not github.in_actions:
        return
    annotations = annotations_for(build.outcome)
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
