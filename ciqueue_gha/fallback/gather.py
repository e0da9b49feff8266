"""The summary without the queue: gather the fallback workers' deliveries (sources.py) and
report them as a build from Redis is reported: the merged JUnit, the log's text, the job
summary, the check run (annotations where the token cannot write one), the same exit codes.
A worker that never delivered leaves its share not run: incomplete, exit 3, its tests named.
Every report says first that the build ran without the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from .. import durations
from ..config import BuildOptions, ReportOptions
from ..errors import Incomplete, UsageError
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..github.publish import FinishedBuild, publish
from ..github.workflow import WorkflowCommands
from ..protocol.keys import BuildKeys
from ..queue.supervisor import Verdict
from ..report.build import BuildReport
from ..report.junit import write_junit
from ..report.text import render_text
from .artifacts import RunApi
from .delivery import SUITE_NAME
from .merge import build_record, collection_record
from .reason import announce
from .sources import ArtifactWatch, Gathered, from_directory

#: The job summary's and check run's first section in a fallback build.
BANNER = "## ⚠️ Ran without the queue (static fallback)\n\n"


@dataclass(frozen=True)
class FallbackBuild(FinishedBuild):
    """A finished build that ran without the queue: every report says so first."""

    reason: str = ""

    @property
    def title(self) -> str:
        return f"Without the queue: {self.report.title}"

    def summary(self, limit: int) -> str:
        banner = (
            f"{BANNER}{self.reason}: each worker ran a fixed share of the suite, and failed "
            "tests were requeued within their worker only.\n\n"
        )
        return banner + super().summary(limit - len(banner.encode("utf-8")))


def summarize_fallback(
    reason: str,
    build: BuildOptions,
    options: ReportOptions,
    worker_total: int | None,
    results_dir: Path | None,
) -> int:
    """Gather, report, return the exit code (DESIGN.md §1)."""
    github = GitHubEnv.from_environ()
    keys = BuildKeys(build.build_id or github.run_id or "local", build.attempt or github.attempt)
    announce(f"static fallback ({reason}): gathering the workers' results without Redis")
    gathered = gather(github, options, worker_total, results_dir)
    if not gathered.deliveries:
        raise Incomplete("no fallback worker delivered results: the suite did not run")
    report, verdict = merged_report(gathered)
    write_junit(report, options.junit_xml, SUITE_NAME)
    if options.durations_file:  # the next builds' split, longest first
        known = durations.load_file(options.durations_file)
        durations.save_file(options.durations_file, durations.blend(known, report.unit_durations()))
    log = RunnerLog()
    log.text(render_text(report, keys, verdict))
    for index in gathered.missing:
        log.text(
            f"ciqueue-gha: worker {index} of {gathered.total} never delivered its results: "
            f"its share ({len(share_of(gathered, index))} units) is reported as not run"
        )
    click.echo(f"ciqueue-gha: merged JUnit: {options.junit_xml}")
    code = report.exit_code_after(verdict)
    stopped = None if verdict is Verdict.EXHAUSTED else verdict.value
    finished = FallbackBuild(report, keys, code, stopped, options.junit_xml, reason=reason)
    publish(
        finished,
        github,
        WorkflowCommands(),
        token=options.github_token,
        check_name=options.check_name,
    )
    return code


def gather(
    github: GitHubEnv, options: ReportOptions, worker_total: int | None, results_dir: Path | None
) -> Gathered:
    """The deliveries from `results_dir`, else (on GitHub Actions) the run's artifacts."""
    if results_dir is not None:
        return from_directory(results_dir, worker_total)
    if not github.in_actions:
        raise UsageError("the fallback summary needs --results-dir outside GitHub Actions")
    if not options.github_token:
        raise UsageError("the fallback summary needs a token to read the run's artifacts")
    api = RunApi(github, options.github_token)
    return ArtifactWatch(api, github.attempt, worker_total, options.report_timeout).wait()


def share_of(gathered: Gathered, index: int) -> list[str]:
    """Worker `index`'s share, as the workers that delivered split the suite."""
    shares = next((d.shares for d in gathered.deliveries.values() if d.shares), [])
    return shares[index] if index < len(shares) else []


def merged_report(gathered: Gathered) -> tuple[BuildReport, Verdict]:
    """The build's report from the deliveries, the split taken from the first of them (a
    worker that collected another suite is said so, loudly), and why the wait ended."""
    deliveries = [gathered.deliveries[i] for i in sorted(gathered.deliveries)]
    shares = next((d.shares for d in deliveries if d.shares), [])
    for delivery in deliveries:
        if delivery.shares and delivery.shares != shares:
            click.echo(
                f"ciqueue-gha: WARNING: worker {delivery.index} split another collection than "
                f"worker {deliveries[0].index}: workers collected different test sets",
                err=True,
            )
    units = [unit for share in shares for unit in share]
    report = BuildReport.from_records(
        [build_record(deliveries, units)], collection_record(deliveries)
    )
    verdict = gathered.verdict
    if any(d.interrupted for d in deliveries):
        verdict = Verdict.INTERRUPTED
    elif verdict is Verdict.EXHAUSTED and any(d.stopped for d in deliveries):
        verdict = Verdict.STOPPED
    return report, verdict
