"""pytest's reports made queue records: a test's setup, call and teardown reports become one
case (`case_from_reports`), a unit's cases one attempt (`attempt_from_cases`), a collector's
error or skip a case of the build's collection record (`case_from_collect_report`).

Paths are made relative to the repository (`SourcePaths`), so annotations land on the right
lines; every text a test produced is scrubbed of secrets and cut to size before it leaves
the worker's process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..github.env import GitHubEnv
from ..queue.record import AttemptRecord, CaseRecord
from ..truncate import cut


def worst(outcomes: Sequence[str]) -> str:
    """The worst of a unit's case outcomes (error, failed, passed, skipped)."""
    for outcome in ("error", "failed", "passed", "skipped"):
        if outcome in outcomes:
            return outcome
    return "skipped"


def not_collected(unit: str, worker_id: str, started: float) -> AttemptRecord:
    """The attempt for a unit this worker did not collect: an error, never a silent loss."""
    message = (
        f"{unit} is in the queue, but worker {worker_id} did not collect it "
        "(workers collected different test sets)"
    )
    case = CaseRecord(nodeid=unit, outcome="error", message=message, longrepr=message)
    return attempt_from_cases(unit, [case], started)


def attempt_from_cases(unit: str, cases: list[CaseRecord], started: float) -> AttemptRecord:
    """`unit`'s attempt: its worst case's outcome, shown by its first failing case."""
    failing = next((case for case in cases if case.failed), None)
    shown = failing or cases[0]
    return AttemptRecord(
        unit=unit,
        outcome=worst([case.outcome for case in cases]),
        duration=sum(case.duration for case in cases),
        started_at=started,
        longrepr=shown.longrepr,
        file=shown.file,
        line=shown.line,
        cases=cases,
    )


@dataclass(frozen=True)
class SourcePaths:
    """Where paths in reports are relative to, and the repository root we report against:
    GITHUB_WORKSPACE when the tests live inside it (annotations need repository paths),
    else pytest's rootdir."""

    invocation: Path  # tracebacks name files relative to where pytest was started
    rootdir: Path  # item locations are relative to pytest's rootdir
    repository: Path
    # path -> its answer: resolving costs a system call per path component, for every test.
    _seen: dict[Path, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, config: pytest.Config) -> SourcePaths:
        rootdir = config.rootpath.resolve()
        workspace = GitHubEnv.from_environ().workspace
        repository = Path(workspace).resolve() if workspace else rootdir
        if not rootdir.is_relative_to(repository):
            repository = rootdir
        return cls(config.invocation_params.dir.resolve(), rootdir, repository)

    def relative(self, path: Path) -> str | None:
        """`path` relative to the repository, or None when it lies outside (a library)."""
        if path not in self._seen:
            resolved = path.resolve()
            inside = resolved.is_relative_to(self.repository)
            library = "site-packages" in resolved.parts
            self._seen[path] = (
                resolved.relative_to(self.repository).as_posix() if inside and not library else None
            )
        return self._seen[path]


def case_from_reports(
    item: pytest.Item,
    reports: list[pytest.TestReport],
    paths: SourcePaths,
    scrub: Callable[[str], str] = str,
) -> CaseRecord:
    """One test's result from its setup, call and teardown reports, as pytest sees it."""
    outcome, failing, message = "passed", None, ""
    for report in reports:
        if report.failed and failing is None:
            outcome, failing = ("failed" if report.when == "call" else "error"), report
        elif report.skipped and outcome == "passed":
            outcome, message = "skipped", skip_message(report)
    path = paths.relative(paths.rootdir / item.location[0]) or item.location[0]
    line = (item.location[1] or 0) + 1
    if failing is not None:
        message = crash_message(failing)
        path, line = failing_location(failing, paths) or (path, line)
    return CaseRecord(
        nodeid=item.nodeid,
        outcome=outcome,
        duration=sum(report.duration for report in reports),
        message=cut(scrub(message)),
        longrepr=cut(scrub(failing.longreprtext)) if failing is not None else "",
        file=path,
        line=line,
        output=cut(scrub("".join(content for _, content in reports[-1].sections)))
        if reports
        else "",
    )


def skip_message(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longrepr or "")


def crash_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    lines = report.longreprtext.strip().splitlines()
    return lines[-1] if lines else ""


def failing_location(
    report: pytest.TestReport | pytest.CollectReport, paths: SourcePaths
) -> tuple[str, int] | None:
    """The innermost traceback frame inside the repository: file relative to it, 1-based line."""
    traceback = getattr(report.longrepr, "reprtraceback", None)
    for entry in reversed(getattr(traceback, "reprentries", [])):
        location = getattr(entry, "reprfileloc", None)
        if location is None:
            continue
        path = paths.relative(paths.invocation / location.path)
        if path is not None:
            return path, int(location.lineno)
    return None


#: A traceback line as pytest prints one for an import error: ``path:line: in <module>``.
_FRAME = re.compile(r"^(?P<path>\S.*?):(?P<line>\d+): in ", re.MULTILINE)


def case_from_collect_report(
    report: pytest.CollectReport, paths: SourcePaths, scrub: Callable[[str], str] = str
) -> CaseRecord:
    """A collector's error (a file that failed to import) or skip (a module-level skip) as
    the case the report shows: named by the collector's node id, as pytest's JUnit names it."""
    path = report.nodeid.split("::", 1)[0]
    file, line = paths.relative(paths.rootdir / path) or path, 0
    if isinstance(report.longrepr, tuple):  # a skip: (path, 1-based line, reason)
        where, lineno, reason = report.longrepr
        skipped_in = paths.relative(Path(where))
        if skipped_in is not None:
            file, line = skipped_in, int(lineno or 0)
        return CaseRecord(
            nodeid=report.nodeid,
            outcome="skipped",
            message=cut(scrub(str(reason))),
            longrepr=cut(scrub(str(report.longrepr))),  # what pytest's JUnit holds
            file=file,
            line=line,
        )
    file, line = collect_error_location(report, paths) or (file, line)
    return CaseRecord(
        nodeid=report.nodeid,
        outcome="error",
        message=cut(scrub(collect_error_message(report))),
        longrepr=cut(scrub(report.longreprtext)),
        file=file,
        line=line,
    )


def collect_error_message(report: pytest.CollectReport) -> str:
    """The error's last line (``ModuleNotFoundError: No module named 'x'``)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return errors[-1] if errors else (lines[-1] if lines else "collection failure")


def collect_error_location(
    report: pytest.CollectReport, paths: SourcePaths
) -> tuple[str, int] | None:
    """The innermost frame inside the repository of a collection error's traceback."""
    located = failing_location(report, paths)
    if located is not None:
        return located
    # An import error's report is text only (pytest shortens its traceback).
    for match in reversed(list(_FRAME.finditer(report.longreprtext))):
        path = paths.relative(paths.invocation / match["path"])
        if path is not None:
            return path, int(match["line"])
    return None
