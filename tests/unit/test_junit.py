"""The merged JUnit file, written one testcase at a time, over the golden builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Error, Failure
from junitparser.xunit2 import FlakyFailure, JUnitXml, RerunFailure

from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.junit import junit_names, write_junit
from tests.golden.regenerate import cases, load_records


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_streamed_file_counts_as_junitparser_counts(case: Path, tmp_path: Path) -> None:
    description = json.loads((case / "input.json").read_text(encoding="utf-8"))
    report = BuildReport.from_records(load_records(description))
    path = tmp_path / "merged.xml"
    write_junit(report, path)

    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    written = (suite.tests, suite.failures, suite.errors, suite.skipped, suite.time)
    # xunit2's <testsuites> has no `skipped` to read back.
    root = (xml.tests, xml.failures, xml.errors, suite.skipped, xml.time)
    suite.update_statistics()  # junitparser's own count of the cases in the file
    assert (
        written
        == root
        == (
            suite.tests,
            suite.failures,
            suite.errors,
            suite.skipped,
            suite.time,
        )
    )
    expected = [junit_names(h.final.nodeid) for h in report.cases]
    expected += [junit_names(unit) for unit in [*report.missing, *sorted(report.strays)]]
    assert [(c.classname, c.name) for c in suite] == expected
    assert suite.tests == len(expected) > 0


def test_failures_flaky_and_not_run_cases_are_written(tmp_path: Path) -> None:
    case = next(case for case in cases() if case.name == "mixed")
    description = json.loads((case / "input.json").read_text(encoding="utf-8"))
    report = BuildReport.from_records(load_records(description))
    path = tmp_path / "merged.xml"
    write_junit(report, path)
    suite = next(iter(JUnitXml.fromfile(str(path))))
    results = [type(entry) for testcase in suite for entry in testcase.result]
    assert Failure in results and Error in results
    interim = [type(r) for testcase in suite for r in testcase.interim_result]
    assert FlakyFailure in interim or RerunFailure in interim
    failing = [tc for tc in suite if any(isinstance(r, Failure) for r in tc.result)]
    assert all(tc._elem.get("file") and int(tc._elem.get("line")) > 0 for tc in failing)
