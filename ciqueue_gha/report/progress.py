"""A running build's progress in words: the console's periodic line, a failure's line, and
the live check run's title, summary and annotations while the build runs.

Failures come as attempt records (queue/progress.py); their annotations are made exactly as
the final report's (annotations.py), so the final check run adds only those not sent yet.
"""

from __future__ import annotations

from ..queue.progress import Progress
from ..queue.record import AttemptRecord
from ..truncate import ROW_NAME_LIMIT
from .annotations import Annotation, case_annotation
from .build import CaseHistory
from .markdown import code
from .plain import one_line

#: Failures the live check run's summary names (the annotations hold every one).
LISTED_FAILURES = 20


def duration(seconds: float | None) -> str:
    """`seconds` as a person reads it: 45s, 3m 05s, 1h 02m; "?" when unknown."""
    if seconds is None:
        return "?"
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def counts(progress: Progress) -> str:
    """``120/200 done (60%), 3 failed``."""
    share = 100 * progress.done // progress.total if progress.total else 100
    return f"{progress.done}/{progress.total} done ({share}%), {progress.failed} failed"


def progress_line(progress: Progress) -> str:
    """The console's periodic line: counts, rate, live workers, ETA."""
    return (
        f"ciqueue-gha: {counts(progress)}, {progress.rate:.1f}/s, "
        f"{progress.workers} workers, ETA {duration(progress.eta)}"
    )


def failed_cases(record: AttemptRecord) -> list[CaseHistory]:
    """The failed test cases of a failed attempt, as the final report holds them."""
    return [CaseHistory(case, record.unit, record.worker) for case in record.cases if case.failed]


def failure_lines(record: AttemptRecord) -> list[str]:
    """``FAILED nodeid (file:line) - message`` for each failed case of `record`."""
    lines = []
    for history in failed_cases(record):
        case = history.final
        label = "ERROR" if case.outcome == "error" else "FAILED"
        where = f" ({case.file}:{case.line})" if case.file else ""
        lines.append(one_line(f"{label} {case.nodeid}{where} - {case.message}", 500))
    return lines


def failure_annotations(records: list[AttemptRecord]) -> list[Annotation]:
    """One annotation per failed case, as the final report makes it."""
    return [case_annotation(history) for record in records for history in failed_cases(record)]


def live_title(progress: Progress) -> str:
    return f"Running: {counts(progress)}"


def live_summary(progress: Progress, failures: list[str]) -> str:
    """The in-progress check run's Markdown: counts, rate, ETA, and the failures so far."""
    lines = [
        f"**{counts(progress)}** · {progress.workers} workers · {progress.rate:.1f} units/s · "
        f"ETA {duration(progress.eta)} · running for {duration(progress.elapsed)}",
        "",
        "The build is still running; this summary is updated as it goes, and replaced by "
        "the final report when it ends.",
    ]
    if failures:
        lines += ["", f"### Failures so far ({len(failures)})", ""]
        lines += [f"- {code(name, ROW_NAME_LIMIT)}" for name in failures[:LISTED_FAILURES]]
        if len(failures) > LISTED_FAILURES:
            lines.append(f"- … and {len(failures) - LISTED_FAILURES} more (see the annotations)")
    return "\n".join(lines)
