"""Annotations for the check run, and the workflow-command fallback."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest

from ciqueue_gha.github.workflow import WorkflowCommands, workflow_annotations
from ciqueue_gha.queue.record import CaseRecord
from ciqueue_gha.report.annotations import Annotation, annotations_for
from ciqueue_gha.report.build import BuildReport, CaseHistory
from ciqueue_gha.truncate import FAILURE_TEXT_LIMIT, TITLE_LIMIT


def report_of(*cases: CaseRecord, missing: list[str] | None = None) -> BuildReport:
    histories = [CaseHistory(case, case.nodeid, "w1") for case in cases]
    return BuildReport(histories, missing or [], {}, len(histories) + len(missing or []))


def failed(nodeid: str = "tests/test_a.py::test_x", **fields: Any) -> CaseRecord:
    case = CaseRecord(
        nodeid,
        "failed",
        message="assert 1 == 2",
        longrepr=">   assert 1 == 2\nE   assert 1 == 2\n\ntests/test_a.py:7: AssertionError",
        file="tests/test_a.py",
        line=7,
    )
    return dataclasses.replace(case, **fields)


def test_one_failure_annotation_per_failing_case_at_its_line() -> None:
    result = annotations_for(
        report_of(
            failed(),
            CaseRecord("tests/test_a.py::test_ok", "passed", file="tests/test_a.py", line=3),
            CaseRecord("tests/test_a.py::test_skip", "skipped", message="later"),
            failed(
                "tests/test_b.py::test_y",
                outcome="error",
                message="fixture broke",
                file="tests/conftest.py",
                line=12,
            ),
        )
    )
    assert [(a.path, a.start_line, a.end_line, a.annotation_level, a.title) for a in result] == [
        ("tests/test_a.py", 7, 7, "failure", "tests/test_a.py::test_x"),
        ("tests/conftest.py", 12, 12, "failure", "tests/test_b.py::test_y"),
    ]
    assert result[0].message.startswith("assert 1 == 2\n\n>   assert 1 == 2\n")
    assert result[0].message.endswith("AssertionError")
    assert result[1].message.startswith("ERROR: fixture broke\n\n")


def test_a_failure_without_a_location_sits_on_line_1_of_its_test_file() -> None:
    (annotation,) = annotations_for(
        report_of(
            failed(
                "tests/sub/test_c.py::TestK::test_z[1]",
                outcome="error",
                message="worker died",
                longrepr="worker died",
                file="",
                line=0,
            )
        )
    )
    assert (annotation.path, annotation.start_line) == ("tests/sub/test_c.py", 1)
    assert annotation.message == "ERROR: worker died"  # not repeated as a traceback


def test_units_that_never_ran_get_no_annotation() -> None:
    assert annotations_for(report_of(missing=["tests/test_lost.py::test_gone"])) == []


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("", "tests/test_a.py", "tests/test_a.py"),
        ("python", "tests/test_a.py", "python/tests/test_a.py"),
        ("./python/", "./tests/test_a.py", "python/tests/test_a.py"),
        ("sub\\dir", "tests\\test_a.py", "sub/dir/tests/test_a.py"),
    ],
)
def test_path_prefix(prefix: str, path: str, expected: str) -> None:
    (annotation,) = annotations_for(report_of(failed(file=path)), path_prefix=prefix)
    assert annotation.path == expected


def test_huge_texts_are_cut_within_the_api_limits() -> None:
    case = failed(
        "tests/test_a.py::test_p[" + "x" * 1000 + "]",
        message="m" * 100_000,
        longrepr="\n".join(f"line {i} " + "é" * 50 for i in range(5000)),
        output="\x1b[31mred\x1b[0m\x00" + "o" * 100_000,
    )
    (annotation,) = annotations_for(report_of(case))
    assert annotation.title is not None and len(annotation.title) == TITLE_LIMIT
    assert annotation.title.endswith("…")
    assert len(annotation.message.encode()) < 64 * 1024
    assert annotation.message.startswith("m" * (FAILURE_TEXT_LIMIT // 2))
    assert "line 0 " in annotation.message and "line 4999 " in annotation.message
    assert annotation.raw_details is not None and len(annotation.raw_details.encode()) < 64 * 1024
    assert annotation.raw_details.startswith("red\N{REPLACEMENT CHARACTER}ooo")


def annotation(n: int, level: str = "failure") -> Annotation:
    return Annotation(f"t/test_{n}.py", n, n, level, f"boom {n}\nline 2", title=f"t::test_{n}")


def test_workflow_fallback_writes_one_command_line_per_annotation() -> None:
    log = io.StringIO()
    written = workflow_annotations(
        [annotation(1), annotation(2, "warning")], WorkflowCommands(log, {})
    )
    assert written == 2
    assert log.getvalue().splitlines() == [
        "::error file=t/test_1.py,line=1,endLine=1,title=t%3A%3Atest_1::boom 1%0Aline 2",
        "::warning file=t/test_2.py,line=2,endLine=2,title=t%3A%3Atest_2::boom 2%0Aline 2",
    ]


def test_workflow_fallback_stops_at_what_the_runner_shows_and_says_so() -> None:
    log = io.StringIO()
    written = workflow_annotations([annotation(n) for n in range(1, 26)], WorkflowCommands(log, {}))
    lines = log.getvalue().splitlines()
    assert written == 10
    assert [line.split(" ", 1)[0] for line in lines] == ["::error"] * 10 + ["::notice"]
    assert "title=t%3A%3Atest_10::" in lines[9]
    assert lines[-1].startswith("::notice title=ciqueue-gha%3A more failures::15 more failing")
