"""How the reports name the workers whose circuit breaker tripped: the first error of a streak
in one line, the console's line, and the job summary's section (the check run's summary is
the same Markdown), escaped like every text a test supplies."""

from __future__ import annotations

from ciqueue_gha.queue.breaker import StoppedWorker, first_error
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.markdown import render_job_summary
from ciqueue_gha.report.text import stopped_worker_line
from ciqueue_gha.truncate import ROW_MESSAGE_LIMIT


def failed(message: str, longrepr: str = "") -> AttemptRecord:
    case = CaseRecord("t.py::test", "error", message=message, longrepr=longrepr)
    return AttemptRecord(unit="t.py::test", outcome="error", cases=[case])


def test_the_first_error_is_the_first_line_of_the_first_failure_cut_to_a_row() -> None:
    assert first_error(failed("\nOperationalError: connection refused\n  at db.py")) == (
        "OperationalError: connection refused"
    )
    assert first_error(failed("", "E   boom\nmore")) == "E   boom"
    long = first_error(failed("x" * 5000))
    assert len(long) == ROW_MESSAGE_LIMIT and long.endswith("…")
    assert first_error(AttemptRecord(unit="u", outcome="failed")) == "failed"


def test_the_console_names_the_worker_its_streak_and_first_error() -> None:
    line = stopped_worker_line(StoppedWorker("runner-3", "connection refused: db:5432", 10))
    assert line == (
        "STOPPED WORKER runner-3: 10 units failed in a row, then it stopped taking work "
        "(circuit breaker); they went to other workers; first error: connection refused: db:5432"
    )
    last = stopped_worker_line(StoppedWorker("w", "e", 2, last=True))
    assert "they are its failures (no other live worker)" in last


def test_the_job_summary_lists_stopped_workers_escaped() -> None:
    report = BuildReport([], [], {}, 0)
    report.stopped_workers = [StoppedWorker("w|1", "refused <b>|</b>", 3)]
    markdown = render_job_summary(report, build="7 attempt 1")
    assert "### Stopped workers (circuit breaker) (1)" in markdown
    (row,) = [line for line in markdown.splitlines() if line.startswith("| <code>w")]
    assert row.count("|") == 4  # the worker's and the error's bars cannot split the row
    assert "<b>" not in row
    assert "Stopped workers" not in render_job_summary(BuildReport([], [], {}, 0), build="7")
