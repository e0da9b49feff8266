"""Prints what the chaos rounds injected, once, at the end of the session: the tally the
last round's report carries (tests/chaos/tally.py)."""

from __future__ import annotations

import pytest

from tests.chaos.tally import TALLY_PROPERTY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    lines = [
        value
        for report in reports
        if report.when == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == TALLY_PROPERTY
    ]
    if lines:
        terminalreporter.write_line(lines[-1])  # reports arrive in the order the rounds ran
