"""The pytest plugin: makes a pytest session a queue worker.

The session collects as usual, populates the queue (the first worker to get there) or
checks its collection against the populated one, then runs the tests in the order the
queue hands them out, one lease each, through pytest's own run protocol, so fixtures,
markers, skips, xfail, setup and teardown errors behave as in plain pytest.

pytest tears fixtures down according to the *next* item, so the plugin reserves one unit
ahead: while a unit runs, the lease of the unit behind it is already held (and heartbeat),
and each acknowledge carries the reserve of the unit after that: one round trip a unit.
The worker does not wait for that round trip: a passed unit's acknowledge is sent and the
unit reserved ahead starts at once; the reply (the unit after it) is read when pytest's
teardown of that unit asks which item is next, by when it has long arrived. A failed unit's
acknowledge is waited for: its reply may say the build stopped (--max-failures).
A unit held that way waits for the one running, though another worker may be idle: so a
unit expected to run long (recorded durations, `LATE_RESERVE_ROUND_TRIPS`) is run with no
unit held behind it, and its successor is reserved only when pytest asks for the next item,
as the unit's teardown starts: one more round trip for that unit, and no unit held behind it.

What collection reported besides tests (files that failed to import, files skipped whole)
is recorded for the build's report before anything is queued (queue/collection.py), and
pytest's ``-x`` / ``--maxfail N`` become the build's ``--max-failures`` (maxfail.py).

Registered under the ``pytest11`` entry point and inactive unless ``ciqueue-gha worker``
(or ``pytest --ciqueue`` with ``CIQUEUE_*`` in the environment) asks for it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

from .durations import expected
from .errors import EXIT_INCOMPLETE, CiqueueError
from .github.env import GitHubEnv
from .maxfail import take_over_maxfail
from .protocol.scripts import redis_failure
from .queue.collection import record_collection
from .queue.record import AttemptRecord, BuildRecord, CaseRecord
from .queue.retry import plan_retry
from .queue.supervisor import Supervisor
from .queue.worker import Done, Finishing, Heartbeat, Lease, QueueWorker, Reservation
from .truncate import cut

#: How often a worker prints its progress line, seconds.
PROGRESS_EVERY = 5.0

#: A unit expected to take at least this many of the worker's round trips to Redis runs
#: with no unit reserved behind it (its successor is reserved as its teardown starts): the
#: extra round trip costs it at most 1 %, and no test waits, leased, behind a long one.
LATE_RESERVE_ROUND_TRIPS = 100

#: Weight of the newest round trip in the worker's moving average of them.
ROUND_TRIP_SMOOTHING = 0.2

UNITS = ("test", "file")

#: What a worker knows of the unit after the one it runs: its reservation, or how to get it
#: when pytest's teardown asks (read the reply in flight, or reserve late).
Upcoming = Reservation | Callable[[], Reservation]


def unit_of(nodeid: str, unit: str) -> str:
    """The queued unit a test belongs to: itself, or its file."""
    return nodeid.split("::", 1)[0] if unit == "file" else nodeid


def group_units(items: Sequence[pytest.Item], unit: str) -> dict[str, list[pytest.Item]]:
    """Collected items grouped into queue units, both in collection order."""
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(unit_of(item.nodeid, unit), []).append(item)
    return units


class LateNextItem:
    """pytest's `nextitem` for a unit run with nothing reserved behind it: reserves the next
    unit when pytest first asks about it, which its teardown does (``listchain``) to know which
    fixtures the next item still needs. No next unit, or an error reserving it (kept for
    `raise_error`, so it is not reported as the test's teardown error): nothing is needed.
    Any other attribute is the next item's."""

    def __init__(
        self, reserve: Callable[[], Reservation], units: Mapping[str, list[pytest.Item]]
    ) -> None:
        self._reserve = reserve
        self._units = units
        self.reservation: Reservation | None = None
        self._item: pytest.Item | None = None
        self._error: Exception | None = None

    def resolve(self) -> pytest.Item | None:
        if self.reservation is None and self._error is None:
            try:
                self.reservation = self._reserve()
            except Exception as exc:
                self._error = exc
            if isinstance(self.reservation, Lease) and self.reservation.test in self._units:
                self._item = self._units[self.reservation.test][0]
        return self._item

    def listchain(self) -> list[Any]:  # pytest's nodes, session first
        item = self.resolve()
        return item.listchain() if item is not None else []

    def __getattr__(self, name: str) -> Any:
        item = self.resolve()
        if item is None:
            raise AttributeError(name)
        return getattr(item, name)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


@dataclass
class WorkerTally:
    """What one worker did: tests executed, and its attempts by disposition."""

    executed: int = 0
    final_failures: list[str] = field(default_factory=list)
    requeued: int = 0
    stale: int = 0
    stopped: bool = False  # max-failures reached, or pytest's own -x / --maxfail


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
        progress_every: float = PROGRESS_EVERY,
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
        self.error: CiqueueError | None = None
        self._reports: list[pytest.TestReport] = []
        self._running: tuple[Lease, pytest.Item] | None = None
        self._paths = SourcePaths(Path.cwd(), Path.cwd(), Path.cwd())
        self._last_progress = time.monotonic()
        self._expected: dict[str, float] = {}
        self._round_trip: float | None = None  # moving average, seconds
        self._regranted: Lease | None = None  # see _read_finishing
        self._supervisor: Supervisor | None = None
        self._collect_reports: list[pytest.CollectReport] = []
        self.collection_interrupted = False  # collection errors stopped the build, as pytest's
        self.collection_failed = False  # a file failed to import (a build failure, as pytest's)

    def pytest_configure(self, config: pytest.Config) -> None:
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
        units = group_units(session.items, self.unit)
        names = self.order(list(units)) if self.order else list(units)
        retry = plan_retry(self.worker.client, self.worker.keys)
        if retry.notice:
            self._say(retry.notice)
        if retry.units is not None:
            names = [name for name in names if name in retry.units]
        population = self.worker.populate(
            names, allow_empty=retry.units is not None, basis=retry.basis
        )
        if not population.matches:
            self._report_mismatch(names)
        self._guard_exit()
        self._expected = expected(list(units), self.durations)
        pending = self.worker.wait_for_lease(self._reserve())
        upcoming = self._reserve_behind(pending)
        while pending is not None:
            pending, upcoming = self._run_unit(session, units, pending, upcoming)

    def _run_unit(
        self,
        session: pytest.Session,
        units: Mapping[str, list[pytest.Item]],
        pending: Lease,
        upcoming: Upcoming,
    ) -> tuple[Lease | None, Upcoming]:
        """Run `pending`'s unit and finish it: the lease to run next (None: no more) and what
        is known of the unit after that one."""
        # A reservation in hand, or one to read (the reply to the acknowledge in flight) or to
        # make (a unit run long) only when pytest's teardown asks which item is next.
        late = LateNextItem(upcoming, units) if callable(upcoming) else None
        ahead = upcoming if isinstance(upcoming, Lease) else None
        nextitem = late if late is not None else self._item_of(ahead, units)
        if self.heartbeat:
            self.heartbeat.hold(pending, *([ahead] if ahead else []))
        self._regranted = None
        record = self._execute(session, pending, units.get(pending.test), nextitem)
        if late is not None:
            late.resolve()
            late.raise_error()
            assert late.reservation is not None  # else raise_error raised
            upcoming = late.reservation
        assert not callable(upcoming)
        # Counted under the lease it got back, if it did (see _read_finishing).
        return self._finish_unit(session, self._regranted or pending, record, upcoming)

    def _finish_unit(
        self, session: pytest.Session, pending: Lease, record: AttemptRecord, next_: Reservation
    ) -> tuple[Lease | None, Upcoming]:
        """Acknowledge (or requeue) `pending`, `next_` the unit after it: the lease to run next
        (None: no more) and what is known of the unit after that one."""
        ahead = next_ if isinstance(next_, Lease) else None
        stopping = session.shouldstop or session.shouldfail
        if next_ == Done("stopped"):
            self._finish(pending, record, reserve_next=False)
            self._stop()
            return None, next_
        # The acknowledge goes out, with the reserve of the unit after `ahead`, and `ahead` runs
        # while Redis answers; a failure waits for its answer, which may say stop. `ahead` run
        # long: its teardown reserves; nothing ahead: the reserve is needed now. Under a failure
        # cap a failure always reserves: that reply is how this worker learns the build stopped.
        capped_failure = record.failed and self.worker.settings.max_failures is not None
        reserve_next = ahead is None or not self._runs_long(ahead.test) or capped_failure
        if ahead is not None and reserve_next and not record.failed and not stopping:
            finishing = self.worker.acknowledge_later(pending, record)
            return ahead, partial(self._read_finishing, finishing, ahead)
        reservation = self._finish(pending, record, reserve_next=reserve_next)
        if stopping or reservation == Done("stopped"):
            self._stop()
            return None, Done("stopped")
        if ahead is None:
            assert reservation is not None  # asked for with the acknowledge
            following = self.worker.wait_for_lease(reservation)
            return following, self._reserve_behind(following)
        if isinstance(reservation, Lease) and reservation.test == ahead.test:
            # This worker stalled past the lease it reserved ahead, and got the test back under
            # a new lease: run it once, under that one (running the item twice in a row would
            # break pytest's setup state).
            return reservation, self._reserve_behind(reservation)
        # Not asked for when `ahead` runs long: its teardown reserves.
        return ahead, reservation if reservation is not None else self._reserve

    def _stop(self) -> None:
        """The build stopped (--max-failures) or pytest was told to (-x, --maxfail): whatever
        was reserved ahead goes back at once, unrun."""
        self.worker.release()
        self.tally.stopped = True

    def _read_finishing(self, finishing: Finishing, running: Lease) -> Reservation:
        """The reservation an acknowledge sent while `running` runs brought back. If it is
        `running`'s own unit (this worker stalled past its lease, and got it back), the run
        under way counts under the new lease, and the next unit is reserved now."""
        disposition, reservation = finishing.result()
        self._tally(disposition, failed=False)
        if isinstance(reservation, Lease) and reservation.test == running.test:
            self._regranted = regranted = reservation
            reservation = self._reserve()
            if self.heartbeat:
                reserved = [reservation] if isinstance(reservation, Lease) else []
                self.heartbeat.hold(regranted, *reserved)
        assert reservation is not None  # asked for with the acknowledge
        return reservation

    @staticmethod
    def _item_of(lease: Lease | None, units: Mapping[str, list[pytest.Item]]) -> pytest.Item | None:
        """The first item of `lease`'s unit, if this worker collected it."""
        return units[lease.test][0] if lease is not None and lease.test in units else None

    def _runs_long(self, unit: str) -> bool:
        """Whether `unit` is expected to take LATE_RESERVE_ROUND_TRIPS round trips or more;
        never when no duration was recorded."""
        seconds = self._expected.get(unit)
        if seconds is None or self._round_trip is None:
            return False
        return seconds >= LATE_RESERVE_ROUND_TRIPS * self._round_trip

    def _reserve_behind(self, lease: Lease | None) -> Upcoming:
        """The reservation of the unit to run after `lease`'s: made now, or later (as the
        teardown of `lease`'s unit starts) when that unit runs long; none without a lease."""
        if lease is None:
            return Done("exhausted")
        return self._reserve if self._runs_long(lease.test) else self._reserve()

    def _reserve(self) -> Reservation:
        started = time.perf_counter()
        reservation = self.worker.reserve()
        self._count_round_trip(time.perf_counter() - started)
        return reservation

    def _count_round_trip(self, seconds: float) -> None:
        if self._round_trip is None:
            self._round_trip = seconds
        else:
            self._round_trip += ROUND_TRIP_SMOOTHING * (seconds - self._round_trip)

    def _report_mismatch(self, names: list[str]) -> None:
        """Say loudly that our collection differs from the queue's, and record what only we
        collected, so the summary reports it as not run instead of losing it."""
        queued: list[str] = self.worker.client.lrange(self.worker.keys.key("tests"), 0, -1)  # type: ignore[assignment]
        ours_only = sorted(set(names) - set(queued))
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

    def _guard_exit(self) -> None:
        """A test that calls os._exit() ends this worker: acknowledge its lease as an error
        first, so the test is reported where it broke and is not handed to the next worker."""
        real_exit = os._exit
        pid = os.getpid()

        def guarded_exit(status: int) -> NoReturn:
            running = self._running
            if os.getpid() == pid and running is not None:
                lease, item = running
                message = f"{item.nodeid} called os._exit({status}), which ended the worker"
                crash = CaseRecord(
                    nodeid=item.nodeid, outcome="error", message=message, longrepr=message
                )
                record = attempt_from_cases(lease.test, [crash], self.worker.now())
                with suppress(Exception):
                    self.worker.acknowledge(lease, record, reserve_next=False)
                    self.worker.release()
                    self._say(message)
                real_exit(EXIT_INCOMPLETE)
            real_exit(status)

        os._exit = guarded_exit

    def _finish(
        self, lease: Lease, record: AttemptRecord, *, reserve_next: bool = True
    ) -> Reservation | None:
        requeue = record.failed and self.worker.may_requeue
        finish = self.worker.requeue if requeue else self.worker.acknowledge
        started = time.perf_counter()
        disposition, reservation = finish(lease, record, reserve_next=reserve_next)
        self._count_round_trip(time.perf_counter() - started)
        self._tally(disposition, failed=record.failed, test=lease.test)
        return reservation

    def _tally(self, disposition: str, *, failed: bool, test: str = "") -> None:
        self.tally.executed += 1
        if disposition == "requeued":
            self.tally.requeued += 1
        elif disposition == "stale":
            self.tally.stale += 1
        elif failed:
            self.tally.final_failures.append(test)
        self._maybe_report_progress()

    def _execute(
        self,
        session: pytest.Session,
        lease: Lease,
        items: list[pytest.Item] | None,
        nextitem: pytest.Item | LateNextItem | None,
    ) -> AttemptRecord:
        started = self.worker.now()
        if items is None:
            return not_collected(lease.test, self.worker.worker_id, started)
        cases = []
        for index, item in enumerate(items):
            following: pytest.Item | LateNextItem | None = (
                items[index + 1] if index + 1 < len(items) else nextitem
            )
            self._reports = []
            self._running = (lease, item)
            item.ihook.pytest_runtest_protocol(item=item, nextitem=following)
            self._running = None
            cases.append(case_from_reports(item, self._reports, self._paths, self.scrub))
        return attempt_from_cases(lease.test, cases, started)

    def _maybe_report_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.progress_every:
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

    @staticmethod
    def _say(line: str) -> None:
        print(f"ciqueue-gha: {line}", file=sys.stderr, flush=True)


def worst(outcomes: Sequence[str]) -> str:
    for outcome in ("error", "failed", "passed", "skipped"):
        if outcome in outcomes:
            return outcome
    return "skipped"


def not_collected(test: str, worker_id: str, started: float) -> AttemptRecord:
    """The attempt for a unit this worker did not collect: an error, never a silent loss."""
    message = (
        f"{test} is in the queue, but worker {worker_id} did not collect it "
        "(workers collected different test sets)"
    )
    case = CaseRecord(nodeid=test, outcome="error", message=message, longrepr=message)
    return attempt_from_cases(test, [case], started)


def attempt_from_cases(test: str, cases: list[CaseRecord], started: float) -> AttemptRecord:
    failing = next((case for case in cases if case.failed), None)
    shown = failing or cases[0]
    return AttemptRecord(
        test=test,
        outcome=worst([case.outcome for case in cases]),
        duration=sum(case.duration for case in cases),
        started_at=started,
        longrepr=shown.longrepr,
        file=shown.file,
        line=shown.line,
        cases=cases,
    )


@dataclass(frozen=True)
class SourcePaths:
    """Where paths in reports are relative to, and the repository root we report against:
    GITHUB_WORKSPACE when the tests live inside it (annotations need repository paths),
    else pytest's rootdir."""

    invocation: Path  # tracebacks name files relative to where pytest was started
    rootdir: Path  # item locations are relative to pytest's rootdir
    repository: Path
    # path -> its answer: resolving costs a system call per path component, for every test.
    _seen: dict[Path, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, config: pytest.Config) -> SourcePaths:
        rootdir = config.rootpath.resolve()
        workspace = GitHubEnv.from_environ().workspace
        repository = Path(workspace).resolve() if workspace else rootdir
        if not rootdir.is_relative_to(repository):
            repository = rootdir
        return cls(config.invocation_params.dir.resolve(), rootdir, repository)

    def relative(self, path: Path) -> str | None:
        """`path` relative to the repository, or None when it lies outside (a library)."""
        if path not in self._seen:
            resolved = path.resolve()
            inside = resolved.is_relative_to(self.repository)
            library = "site-packages" in resolved.parts
            self._seen[path] = (
                resolved.relative_to(self.repository).as_posix() if inside and not library else None
            )
        return self._seen[path]


def case_from_reports(
    item: pytest.Item,
    reports: list[pytest.TestReport],
    paths: SourcePaths,
    scrub: Callable[[str], str] = str,
) -> CaseRecord:
    """One test's result from its setup, call and teardown reports, as pytest sees it."""
    outcome, failing, message = "passed", None, ""
    for report in reports:
        if report.failed and failing is None:
            outcome, failing = ("failed" if report.when == "call" else "error"), report
        elif report.skipped and outcome == "passed":
            outcome, message = "skipped", skip_message(report)
    path = paths.relative(paths.rootdir / item.location[0]) or item.location[0]
    line = (item.location[1] or 0) + 1
    if failing is not None:
        message = crash_message(failing)
        path, line = failing_location(failing, paths) or (path, line)
    return CaseRecord(
        nodeid=item.nodeid,
        outcome=outcome,
        duration=sum(report.duration for report in reports),
        message=cut(scrub(message)),
        longrepr=cut(scrub(failing.longreprtext)) if failing is not None else "",
        file=path,
        line=line,
        output=cut(scrub("".join(content for _, content in reports[-1].sections)))
        if reports
        else "",
    )


def skip_message(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longrepr or "")


def crash_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    lines = report.longreprtext.strip().splitlines()
    return lines[-1] if lines else ""


def failing_location(
    report: pytest.TestReport | pytest.CollectReport, paths: SourcePaths
) -> tuple[str, int] | None:
    """The innermost traceback frame inside the repository: file relative to it, 1-based line."""
    traceback = getattr(report.longrepr, "reprtraceback", None)
    for entry in reversed(getattr(traceback, "reprentries", [])):
        location = getattr(entry, "reprfileloc", None)
        if location is None:
            continue
        path = paths.relative(paths.invocation / location.path)
        if path is not None:
            return path, int(location.lineno)
    return None


#: A traceback line as pytest prints one for an import error: ``path:line: in <module>``.
_FRAME = re.compile(r"^(?P<path>\S.*?):(?P<line>\d+): in ", re.MULTILINE)


def case_from_collect_report(
    report: pytest.CollectReport, paths: SourcePaths, scrub: Callable[[str], str] = str
) -> CaseRecord:
    """A collector's error (a file that failed to import) or skip (a module-level skip) as
    the case the report shows: named by the collector's node id, as pytest's JUnit names it."""
    path = report.nodeid.split("::", 1)[0]
    file, line = paths.relative(paths.rootdir / path) or path, 0
    if isinstance(report.longrepr, tuple):  # a skip: (path, 1-based line, reason)
        where, lineno, reason = report.longrepr
        skipped_in = paths.relative(Path(where))
        if skipped_in is not None:
            file, line = skipped_in, int(lineno or 0)
        return CaseRecord(
            nodeid=report.nodeid,
            outcome="skipped",
            message=cut(scrub(str(reason))),
            longrepr=cut(scrub(str(report.longrepr))),  # what pytest's JUnit holds
            file=file,
            line=line,
        )
    file, line = collect_error_location(report, paths) or (file, line)
    return CaseRecord(
        nodeid=report.nodeid,
        outcome="error",
        message=cut(scrub(collect_error_message(report))),
        longrepr=cut(scrub(report.longreprtext)),
        file=file,
        line=line,
    )


def collect_error_message(report: pytest.CollectReport) -> str:
    """The error's last line (``ModuleNotFoundError: No module named 'x'``)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return errors[-1] if errors else (lines[-1] if lines else "collection failure")


def collect_error_location(
    report: pytest.CollectReport, paths: SourcePaths
) -> tuple[str, int] | None:
    """The innermost frame inside the repository of a collection error's traceback."""
    located = failing_location(report, paths)
    if located is not None:
        return located
    # An import error's report is text only (pytest shortens its traceback).
    for match in reversed(list(_FRAME.finditer(report.longreprtext))):
        path = paths.relative(paths.invocation / match["path"])
        if path is not None:
            return path, int(match["line"])
    return None
