"""The text report says one thing of each test (issue 10, finding 11): a test whose lease expired
and that no worker finished is NOT RUN, never also "another worker ran it"."""

from __future__ import annotations

from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.supervisor import Verdict
from ciqueue_gha.report.build import BuildReport
from ciqueue_gha.report.text import render_text


def test_a_test_taken_over_and_never_finished_is_only_not_run() -> None:
    report = BuildReport(
        cases=[], missing=["t.py::lost"], takeovers={"t.py::lost": 2}, total_units=1
    )
    lines = render_text(report, BuildKeys("b"), Verdict.INACTIVE_WORKERS).splitlines()
    assert "NOT RUN t.py::lost" in lines
    assert not [line for line in lines if "TAKEN OVER" in line], lines
