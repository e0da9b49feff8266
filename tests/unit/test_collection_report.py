"""What collection reported, in the build's report: counts, exit codes, JUnit, summaries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_PASSED
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.collection import CollectedReport, CollectionRecord
from ciqueue_gha.queue.record import AttemptRecord, BuildRecord, CaseRecord
from ciqueue_gha.queue.supervisor import Verdict
from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.junit import write_junit
from ciqueue_gha.report.markdown import render_job_summary
from ciqueue_gha.report.text import render_text

BROKEN = CaseRecord(
    "check_broken.py",
    "error",
    message="ModuleNotFoundError: No module named 'x'",
    longrepr="ImportError while importing test module\nE   ModuleNotFoundError: x",
    file="check_broken.py",
    line=3,
)
SKIPPED = CaseRecord(
    "check_skip.py",
    "skipped",
    message="Skipped: could not import 'y'",
    longrepr="('/w/check_skip.py', 2, \"Skipped: could not import 'y'\")",
    file="check_skip.py",
    line=2,
)


def record(tests: dict[str, str]) -> BuildRecord:
    """A build record where each test finished with its outcome ("" for not finished)."""
    results = {
        test: AttemptRecord(test, outcome, worker="w", cases=[CaseRecord(test, outcome)])
        for test, outcome in tests.items()
        if outcome
    }
    return BuildRecord(bool(tests), list(tests), results, {}, {})


def report_of(tests: dict[str, str], *reports: CaseRecord, interrupted: bool) -> BuildReport:
    collection = CollectionRecord(
        [CollectedReport(case, "w0") for case in reports], "w0" if interrupted else None
    )
    return BuildReport.from_records([record(tests)], collection)


def test_interrupted_build_reports_the_errors_and_exits_as_pytest() -> None:
    report = report_of({}, BROKEN, SKIPPED, interrupted=True)
    assert (report.count("error"), report.count("skipped"), len(report.cases)) == (1, 1, 2)
    assert report.exit_code_after(Verdict.INTERRUPTED) == EXIT_INTERRUPTED
    text = render_text(report, BuildKeys("b"), Verdict.INTERRUPTED)
    assert "2 tests, 0 passed, 0 failed, 1 errors, 1 skipped" in text
    assert "ciqueue-gha: Interrupted: 1 error during collection" in text
    assert "ERROR check_broken.py (check_broken.py:3) - ModuleNotFoundError" in text
    summary = render_job_summary(report, build="b", verdict_text=Verdict.INTERRUPTED.value)
    assert "❌ interrupted" in summary and "Interrupted: 1 error during collection" in summary


def test_interrupted_without_its_record_is_never_green() -> None:
    """The summary saw the mark, then the record was gone: still interrupted, never 0."""
    report = report_of({}, interrupted=False)
    assert report.exit_code == EXIT_PASSED  # nothing in it says otherwise...
    assert report.exit_code_after(Verdict.INTERRUPTED) == EXIT_INTERRUPTED  # ...the verdict does


@pytest.mark.parametrize(
    ("reports", "code"),
    [((BROKEN, SKIPPED), EXIT_FAILED), ((SKIPPED,), EXIT_PASSED)],
    ids=["collection error", "module skip"],
)
def test_continued_build_counts_collection_as_pytest(
    reports: tuple[CaseRecord, ...], code: int
) -> None:
    report = report_of({"check_ok.py::test_a": "passed"}, *reports, interrupted=False)
    assert report.exit_code_after(Verdict.EXHAUSTED) == code
    assert [h.final.nodeid for h in report.cases][-1] == "check_ok.py::test_a"  # after them
    assert report.unit_durations() == {"check_ok.py::test_a": 0.0}  # no collector's duration


@pytest.mark.parametrize(
    ("verdict", "tests", "code"),
    [
        (Verdict.STOPPED, {"a": "failed", "b": ""}, EXIT_FAILED),  # -x: as pytest -x exits
        (Verdict.STOPPED, {"a": "passed", "b": ""}, EXIT_INCOMPLETE),  # no failure to blame
        (Verdict.INACTIVE_WORKERS, {"a": "failed", "b": ""}, EXIT_INCOMPLETE),
        (Verdict.REPORT_TIMEOUT, {"a": "passed", "b": ""}, EXIT_INCOMPLETE),
        (Verdict.EXHAUSTED, {"a": "passed"}, EXIT_PASSED),
    ],
)
def test_exit_code_after_each_verdict(verdict: Verdict, tests: dict[str, str], code: int) -> None:
    assert report_of(tests, interrupted=False).exit_code_after(verdict) == code


def test_junit_writes_collection_results_as_pytest_does(tmp_path: Path) -> None:
    path = tmp_path / "merged.xml"
    write_junit(
        report_of({"check_ok.py::test_a": "passed"}, BROKEN, SKIPPED, interrupted=False), path
    )
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors"), suite.get("skipped")) == ("3", "1", "1")
    broken, skipped, _ = suite.iter("testcase")
    assert (broken.get("classname"), broken.get("name"), broken.get("file")) == (
        "",
        "check_broken",
        "check_broken.py",
    )
    assert broken.get("line") is None  # pytest gives a collector no line
    (error,) = broken
    assert (error.tag, error.get("message"), error.text) == (
        "error",
        "collection failure",
        BROKEN.longrepr,
    )
    (skip,) = skipped
    assert (skip.tag, skip.get("message"), skip.text) == (
        "skipped",
        "collection skipped",
        SKIPPED.longrepr,
    )
