"""The summary as plain text, for the log of the job that runs `summary` or `run`.

It holds the tests' own words (ids, messages, tracebacks), so it is printed through
github/log.py, which keeps a runner from reading any of it as a command."""

from __future__ import annotations

from ..protocol.keys import BuildKeys
from ..queue.breaker import StoppedWorker
from ..queue.supervisor import Verdict
from ..truncate import FAILURE_TEXT_LIMIT, cut
from .build import BuildReport, CaseHistory, NotRun, interrupted_line


def render_text(report: BuildReport, keys: BuildKeys, verdict: Verdict) -> str:
    """The totals, each failure with its traceback, the flaky tests, those taken over, why
    the summary stopped waiting, and the tests not run (a test not run is not also listed
    as taken over)."""
    lines = [_totals(report, keys)]
    for history in report.failures:
        lines.extend(_failure(report, history))
    lines.extend(
        f"QUARANTINE EXPIRED {entry.pattern}: until {entry.until} ({entry.source}), no longer "
        "applied"
        for entry in report.trust.expired
    )
    lines.extend(
        f"FLAKY {h.final.nodeid}: failed {len(h.earlier_failures)}x, then passed"
        for h in report.flaky
    )
    not_run = {test.unit for test in report.not_run}  # those are NOT RUN only
    lines.extend(
        f"TAKEN OVER {unit}: its lease expired {count}x and another worker ran it"
        for unit, count in sorted(report.takeovers.items())
        if unit not in not_run
    )
    lines.extend(stopped_worker_line(worker) for worker in report.stopped_workers)
    lines.extend(_stopped(report, verdict))
    lines.extend(_not_run_line(test) for test in report.not_run)
    return "\n".join(lines)


def stopped_worker_line(stopped: StoppedWorker) -> str:
    """A worker whose breaker tripped, in one line: what its streak did, and the first error."""
    went = "are its failures (no other live worker)" if stopped.last else "went to other workers"
    return (
        f"STOPPED WORKER {stopped.worker}: {stopped.units} units failed in a row, then it "
        f"stopped taking work (circuit breaker); they {went}; first error: "
        f"{stopped.first_error}"
    )


def _failure(report: BuildReport, history: CaseHistory) -> list[str]:
    """A failure's line, its standing (new, known flaky...), then its traceback; a
    quarantined one says so first."""
    case = history.final
    label = "ERROR" if case.outcome == "error" else "FAILED"
    if report.trust.excused(case.nodeid):
        label = f"QUARANTINED {label}"
    standing = report.trust.standing(case.nodeid)
    where = f" ({case.file}:{case.line})" if case.file else ""
    traceback = cut(case.longrepr, FAILURE_TEXT_LIMIT)
    return [
        f"{label} {case.nodeid}{where} - {case.message}",
        *([f"    standing: {standing.describe()}"] if standing else []),
        *("    " + line for line in traceback.splitlines()),
    ]


def _not_run_line(test: NotRun) -> str:
    if test.collected_by is None:
        return f"NOT RUN {test.unit}"
    return f"NOT RUN {test.unit}: {test.why()} (workers collected different test sets)"


def _totals(report: BuildReport, keys: BuildKeys) -> str:
    not_run = f", {len(report.not_run)} NOT RUN" if report.not_run else ""
    quarantined = len(report.quarantined)
    not_run = f", {quarantined} of the failures quarantined{not_run}" if quarantined else not_run
    return (
        f"ciqueue-gha: build {keys.build_id} attempt {keys.attempt}: "
        f"{len(report.cases)} tests, {report.count('passed')} passed, "
        f"{report.count('failed')} failed, {report.count('error')} errors, "
        f"{report.count('skipped')} skipped, {len(report.flaky)} flaky{not_run}"
    )


def _stopped(report: BuildReport, verdict: Verdict) -> list[str]:
    """Why the summary stopped before every test finished; nothing when it did not."""
    if report.interrupted or verdict is Verdict.INTERRUPTED:
        return [f"ciqueue-gha: {interrupted_line(report.collection_errors)}"]
    if verdict is Verdict.STOPPED:
        after = "; these tests did not run:" if report.missing else ""
        return [
            f"ciqueue-gha: {verdict.value} (or -x / --maxfail in the pytest command line){after}"
        ]
    if verdict is Verdict.TRIPPED:
        return [f"ciqueue-gha: stopped: {verdict.value}; these tests did not run:"]
    if verdict is not Verdict.EXHAUSTED:
        return [f"ciqueue-gha: gave up waiting ({verdict.value}); these tests did not run:"]
    return []
