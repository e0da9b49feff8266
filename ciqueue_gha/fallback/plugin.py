"""The pytest plugin of a fallback worker: collect as usual, run this worker's share of the
split (split.py), requeue its failed units within the session, and keep every attempt for
the delivery (delivery.py).

A failed unit, while under --max-requeues (per unit) and --requeue-tolerance (a fraction
of this worker's share: there is no build-wide count without the queue), goes to the end of
this worker's list and runs again in the same session, as the queue would hand it out again.
The failure cap (--max-failures, pytest's -x / --maxfail N) counts this worker's failures.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ..plugin.hooks import group_units, unit_of
from ..plugin.maxfail import take_over_maxfail
from ..plugin.records import (
    SourcePaths,
    attempt_from_cases,
    case_from_collect_report,
    case_from_reports,
)
from ..queue.record import AttemptRecord
from ..queue.settings import QueueSettings
from .delivery import Delivery
from .split import split


class FallbackPlugin:
    """Worker `delivery.index` of `delivery.total` without a queue; `delivery` fills as it runs."""

    def __init__(
        self,
        delivery: Delivery,
        settings: QueueSettings,
        *,
        unit: str,
        durations: Mapping[str, float],
        scrub: Callable[[str], str] = str,
    ) -> None:
        self.delivery = delivery
        self.settings = settings
        self.unit = unit
        self.durations = durations
        self.scrub = scrub
        self._reports: list[pytest.TestReport] = []
        self._collect_reports: list[pytest.CollectReport] = []
        self._paths = SourcePaths(Path.cwd(), Path.cwd(), Path.cwd())

    def pytest_configure(self, config: pytest.Config) -> None:
        self.settings = take_over_maxfail(config.option, self.settings)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed or report.skipped:
            self._collect_reports.append(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Keep this worker's share, in its run order; the rest is deselected, as pytest's
        terminal then says."""
        units = group_units(items, self.unit)
        self.delivery.shares = split(list(units), self.durations, self.delivery.total)
        share = self.delivery.shares[self.delivery.index]
        mine = set(share)
        config.hook.pytest_deselected(
            items=[item for item in items if unit_of(item.nodeid, self.unit) not in mine]
        )
        items[:] = [item for unit in share for item in units[unit]]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        option = session.config.option
        self._paths = SourcePaths.of(session.config)
        self.delivery.collection = [
            case_from_collect_report(report, self._paths, self.scrub)
            for report in self._collect_reports
        ]
        if session.testsfailed and not option.continue_on_collection_errors:
            self.delivery.interrupted = True
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        if option.collectonly:
            return True
        units = group_units(session.items, self.unit)
        self._run(session, units, self.delivery.shares[self.delivery.index])
        return True

    def _run(
        self, session: pytest.Session, units: dict[str, list[pytest.Item]], share: list[str]
    ) -> None:
        pending = deque(share)
        requeues: dict[str, int] = {}
        budget = math.ceil(self.settings.requeue_tolerance * len(share))
        failures = 0
        while pending:
            unit = pending.popleft()
            nextitem = units[pending[0]][0] if pending else None
            record = self._execute(unit, units[unit], nextitem)
            again = record.failed and requeues.get(unit, 0) < self.settings.max_requeues
            again = again and sum(requeues.values()) < budget
            self.delivery.attempts.append((record, "requeued" if again else "final"))
            if again:
                requeues[unit] = requeues.get(unit, 0) + 1
                pending.append(unit)
            failures += record.failed and not again
            if self._stopping(session, failures) and pending:
                self.delivery.stopped = True
                return

    def _stopping(self, session: pytest.Session, failures: int) -> bool:
        cap = self.settings.max_failures
        return bool(session.shouldstop or session.shouldfail) or (
            cap is not None and failures >= cap
        )

    def _execute(
        self, unit: str, items: list[pytest.Item], nextitem: pytest.Item | None
    ) -> AttemptRecord:
        """Run `unit`'s items through pytest's protocol; `nextitem` follows the last one."""
        started = time.time()
        cases = []
        for index, item in enumerate(items):
            after = items[index + 1] if index + 1 < len(items) else nextitem
            self._reports = []
            item.ihook.pytest_runtest_protocol(item=item, nextitem=after)
            cases.append(case_from_reports(item, self._reports, self._paths, self.scrub))
        record = attempt_from_cases(unit, cases, started)
        record.worker = self.delivery.worker
        record.lease = len(self.delivery.attempts) + 1
        return record
