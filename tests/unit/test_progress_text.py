"""A running build in words (report/progress.py), its ETA (queue/progress.py), and the
workers' warnings summaries gathered into one (report/warnings.py)."""

from __future__ import annotations

import pytest

from ciqueue_gha.queue.progress import Progress
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.report.progress import (
    LISTED_FAILURES,
    duration,
    failure_annotations,
    failure_lines,
    live_summary,
    progress_line,
)
from ciqueue_gha.report.warnings import gathered_warnings, summary_blocks


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "?"), (0.4, "0s"), (45, "45s"), (185, "3m 05s"), (3725, "1h 02m"), (-3, "0s")],
)
def test_durations_read_as_a_person_reads_them(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_eta_is_the_recorded_seconds_left_over_the_live_workers() -> None:
    progress = Progress(total=200, done=100, failed=0, workers=4, elapsed=50, left_seconds=120)
    assert progress.eta == 30
    assert progress.rate == 2


def test_without_recorded_durations_the_eta_is_the_units_left_at_the_rate_so_far() -> None:
    progress = Progress(total=200, done=50, failed=0, workers=4, elapsed=25, left_seconds=None)
    assert progress.eta == 75
    started = Progress(total=200, done=0, failed=0, workers=0, elapsed=0, left_seconds=None)
    assert started.eta is None
    assert progress_line(started).endswith("ETA ?")


def test_the_progress_line_says_counts_rate_workers_and_eta() -> None:
    progress = Progress(total=200, done=120, failed=3, workers=4, elapsed=30, left_seconds=100)
    assert progress_line(progress) == (
        "ciqueue-gha: 120/200 done (60%), 3 failed, 4.0/s, 4 workers, ETA 25s"
    )


def failed_attempt(unit: str) -> AttemptRecord:
    coloured = "assert \x1b[31m1\x1b[0m == 2"
    cases = [
        CaseRecord(f"{unit}[a]", "passed"),
        CaseRecord(f"{unit}[b]", "failed", message=coloured, file="t.py", line=7),
    ]
    return AttemptRecord(unit, "failed", "w1", 3, cases=cases)


def test_a_failure_is_one_plain_line_and_one_annotation_per_failed_case() -> None:
    record = failed_attempt("t.py::test_x")
    assert failure_lines(record) == ["FAILED t.py::test_x[b] (t.py:7) - assert 1 == 2"]
    [annotation] = failure_annotations([record])
    assert (annotation.path, annotation.start_line, annotation.title) == (
        "t.py",
        7,
        "t.py::test_x[b]",
    )


def test_the_live_summary_names_the_first_failures_and_counts_the_rest() -> None:
    progress = Progress(total=500, done=400, failed=30, workers=2, elapsed=60, left_seconds=None)
    names = [f"t.py::test_{n}" for n in range(30)]
    summary = live_summary(progress, names)
    assert "ETA " in summary and "Failures so far (30)" in summary
    assert summary.count("<code>") == LISTED_FAILURES
    assert f"and {30 - LISTED_FAILURES} more" in summary


SESSION_A = """\
..                                                                       [100%]
=============================== warnings summary ===============================
t.py::test_a
t.py::test_b
  /src/t.py:3: UserWarning: boo
    warnings.warn("boo")

t.py::test_c
  /src/t.py:7: DeprecationWarning: old
    old()

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
3 passed, 3 warnings in 0.10s
"""

SESSION_B = """\
=============================== warnings summary ===============================
t.py::test_d
  /src/t.py:3: UserWarning: boo
    warnings.warn("boo")

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
=========================== short test summary info ============================
FAILED t.py::test_e - assert 1 == 2
"""


def test_a_sessions_warnings_summary_is_read_block_by_block() -> None:
    blocks = summary_blocks(SESSION_A)
    assert [ids for ids, _ in blocks] == [["t.py::test_a", "t.py::test_b"], ["t.py::test_c"]]
    assert blocks[1][1] == "  /src/t.py:7: DeprecationWarning: old\n    old()"
    assert summary_blocks("3 passed in 0.1s\n") == []


def test_the_same_warning_from_two_workers_is_one_block_naming_every_test() -> None:
    gathered = gathered_warnings([SESSION_A, SESSION_B, "no warnings here"])
    assert gathered.count("UserWarning: boo") == 1
    assert gathered.count("DeprecationWarning: old") == 1
    assert "t.py::test_a\nt.py::test_b\nt.py::test_d\n  /src/t.py:3: UserWarning" in gathered
    assert "FAILED" not in gathered and "Docs" not in gathered
    assert gathered_warnings(["3 passed"]) == ""
