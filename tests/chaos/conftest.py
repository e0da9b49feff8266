"""Prints what the chaos rounds injected, once, at the end of the session."""

from __future__ import annotations

import pytest

from tests.chaos.tally import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.rounds:
        terminalreporter.write_line(TALLY.line())
