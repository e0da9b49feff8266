"""The pytest plugin: makes a pytest session a queue worker.

The session collects as usual, populates the queue (the first worker to get there) or
checks its collection against the populated one, then runs the tests in the order the
queue hands them out, one lease each, through pytest's own run protocol, so fixtures,
markers, skips, xfail, setup and teardown errors behave as in plain pytest. Which leases the
worker holds besides the running unit, and when it waits for Redis, is the lease window's
(ahead.py); turning pytest's reports into records is records.py's.

What collection reported besides tests (files that failed to import, files skipped whole)
is recorded for the build's report before anything is queued (queue/collection.py), and
pytest's ``-x`` / ``--maxfail N`` become the build's ``--max-failures`` (maxfail.py).

Registered under the ``pytest11`` entry point (entry.py) and inactive unless ``ciqueue-gha
worker`` (or ``pytest --ciqueue`` with ``CIQUEUE_*`` in the environment) asks for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import redis

from .. import defaults
from ..durations import expected
from ..errors import CiqueueError
from ..protocol.scripts import redis_failure
from ..queue.collection import record_collection
from ..queue.heartbeat_protocol import Heartbeat
from ..queue.record import AttemptRecord, BuildRecord
from ..queue.retry import populate_attempt
from ..queue.supervisor import Supervisor
from ..queue.worker import QueueWorker
from ..trust.repeat import RepeatedUnits, base_unit
from .ahead import LeaseWindow
from .late import LateNextItem
from .maxfail import take_over_maxfail
from .records import (
    SourcePaths,
    attempt_from_cases,
    case_from_collect_report,
    case_from_reports,
    not_collected,
)
from .tally import WorkerTally

UNITS = ("test", "file")


def unit_of(nodeid: str, unit: str) -> str:
    """The queued unit a test belongs to: itself, or its file."""
    return nodeid.split("::", 1)[0] if unit == "file" else nodeid


def group_units(items: Sequence[pytest.Item], unit: str) -> dict[str, list[pytest.Item]]:
    """Collected items grouped into queue units, both in collection order."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(unit_of(item.nodeid, unit), []).append(item)
    return units


class QueuePlugin:
    """The queue worker inside a pytest session; `error` holds what stopped it, if anything."""

    def __init__(
        self,
        worker: QueueWorker,
        heartbeat: Heartbeat | None = None,
        *,
        unit: str = "test",
        order: Callable[[list[str]], list[str]] | None = None,
        durations: Mapping[str, float] | None = None,
        progress_every: float = defaults.PROGRESS_INTERVAL,
    ) -> None:
        self.worker = worker
        self.heartbeat = heartbeat
        self.unit = unit
        self.order = order
        self.durations = durations or {}
        self.progress_every = progress_every
        self.tally = WorkerTally()
        # Applied to every text a test produces before it leaves this process.
        self.scrub: Callable[[str], str] = str
        # Whether a unit's failure is quarantined: it does not fail this worker.
        self.excused: Callable[[str], bool] = lambda unit: False
        self.error: CiqueueError | None = None
        self._reports: list[pytest.TestReport] = []
        self._paths = SourcePaths(Path.cwd(), Path.cwd(), Path.cwd())
        self._last_progress = time.monotonic()
        self._supervisor: Supervisor | None = None
        self._collect_reports: list[pytest.CollectReport] = []
        self._capture: Any = None  # pytest's capture manager, once the session configured
        self.collection_interrupted = False  # collection errors stopped the build, as pytest's
        self.collection_failed = False  # a file failed to import (a build failure, as pytest's)

    def pytest_configure(self, config: pytest.Config) -> None:
        self._capture = config.pluginmanager.getplugin("capturemanager")
        self.worker.settings = take_over_maxfail(config.option, self.worker.settings)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed or report.skipped:
            self._collect_reports.append(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.append(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        option = session.config.option
        self._paths = SourcePaths.of(session.config)
        interrupted = bool(session.testsfailed) and not option.continue_on_collection_errors
        if not option.collectonly:
            self._guarded(self._record_collection, interrupted)
        if interrupted:
            self.collection_interrupted = True
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        if option.collectonly or self.error is not None:
            return True
        self._guarded(self._run, session)
        return True

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run `step`; what stops it on the queue's side is kept in `error`."""
        try:
            step(*args)
        except CiqueueError as exc:
            self.error = exc
        except redis.RedisError as exc:  # lost, out of memory, no permission, ...
            self.error = redis_failure(exc)

    def _record_collection(self, interrupted: bool) -> None:
        """Record this worker's collection errors and skips for the build's report (the first
        worker to see one keeps it), before anything is queued."""
        cases = [
            case_from_collect_report(report, self._paths, self.scrub)
            for report in self._collect_reports
        ]
        self.collection_failed = any(case.failed for case in cases)
        worker = self.worker
        record_collection(
            worker.client,
            worker.keys,
            worker.worker_id,
            cases,
            interrupted=interrupted,
            ttl=worker.settings.key_ttl,
        )

    def _run(self, session: pytest.Session) -> None:
        units = RepeatedUnits(group_units(session.items, self.unit))  # --repeat-new's too
        names = self.order(list(units)) if self.order else list(units)
        offered, population = populate_attempt(self.worker, names, self._say)
        if not population.matches:
            self._report_mismatch(offered)
        seconds = expected(list(units), self.durations)
        policy = LeaseWindow(self.worker, self.heartbeat, seconds, self.tally)
        lease = policy.start()
        while lease is not None:
            nextitem = policy.next_item(units)
            record = self._execute(session, lease.unit, units.get(lease.unit), nextitem)
            lease = policy.finish(record, stopping=bool(session.shouldstop or session.shouldfail))
            self._maybe_report_progress()

    def _report_mismatch(self, names: list[str]) -> None:
        """Say loudly that our collection differs from the queue's, and record what only we
        collected, so the summary reports it as not run instead of losing it."""
        queued = self.worker.queued_units()
        ours_only = sorted(u for u in set(names) - set(queued) if base_unit(u) == u)
        self._say(
            f"WARNING: this worker collected {len(names)} units, the queue holds {len(queued)} "
            f"from another worker's collection: {len(set(queued) - set(names))} queued units "
            f"are not collected here (they will be errors), {len(ours_only)} units collected "
            "here are not queued (they will be reported as not run)"
        )
        if ours_only:
            BuildRecord.add_strays(
                self.worker.client, self.worker.keys, self.worker.worker_id, ours_only
            )

    def _execute(
        self,
        session: pytest.Session,
        unit: str,
        items: list[pytest.Item] | None,
        nextitem: pytest.Item | LateNextItem | None,
    ) -> AttemptRecord:
        """Run `unit`'s items through pytest's protocol; `nextitem` follows the last one."""
        started = self.worker.now()
        if items is None:
            return not_collected(unit, self.worker.worker_id, started)
        cases = []
        for index, item in enumerate(items):
            after: pytest.Item | LateNextItem | None = (
                items[index + 1] if index + 1 < len(items) else nextitem
            )
            self._reports = []
            item.ihook.pytest_runtest_protocol(item=item, nextitem=after)
            if isinstance(after, LateNextItem):
                without_wait(self._reports, after.waited)
            cases.append(case_from_reports(item, self._reports, self._paths, self.scrub))
        return attempt_from_cases(unit, cases, started)

    def _maybe_report_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.progress_every:
            return
        self._last_progress = now
        if self._supervisor is None:
            self._supervisor = Supervisor(self.worker.client, self.worker.keys)
        status = self._supervisor.status()
        self._say(
            f"[{self.worker.worker_id}] ran {self.tally.executed}, "
            f"{len(self.tally.final_failures)} failed here; build: "
            f"{status.finalized}/{status.total} done, {status.failed} failed"
        )

    def _say(self, line: str) -> None:
        """`line` on the worker's real stderr (its log), never into a test's captured output
        (which the JUnit would keep as that test's <system-out>)."""
        suspended = getattr(self._capture, "global_and_fixture_disabled", None)
        with suspended() if suspended is not None else nullcontext():
            print(f"ciqueue-gha: {line}", file=sys.stderr, flush=True)


def without_wait(reports: list[pytest.TestReport], waited: float) -> None:
    """Take the `waited` seconds its teardown spent asking the queue for the next unit off
    a test's teardown report: the link's time, not the test's (its recorded duration sizes
    lease windows and orders the next build)."""
    for report in reports:
        if report.when == "teardown":
            report.duration = max(0.0, report.duration - waited)
