"""What happened to every test of a build: the final case results, flaky ones, those taken
over and those not run, and what collection reported (files that failed to import, files
skipped whole), counted as plain pytest counts them: a collection error is an error, a
module-level skip a skip.

Every report reads this one view and the facts it answers (counts, the units not run, the
title, the exit code): the merged JUnit file, the log's text, the job summary, the check
run and the step outputs never count for themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_PASSED
from ..queue.breaker import StoppedWorker
from ..queue.collection import CollectionRecord
from ..queue.record import AttemptRecord, BuildRecord, CaseRecord, cyclic_gc_paused
from ..queue.supervisor import Verdict
from ..trust.classify import Trust
from ..trust.repeat import base_unit
from .utilization import WorkerUsage, worker_usage


@dataclass
class CaseHistory:
    """One test case: its final result and its earlier failed attempts (requeued or stale)."""

    final: CaseRecord
    unit: str
    worker: str
    earlier_failures: list[CaseRecord] = field(default_factory=list)
    collection: bool = False  # a collector's error or skip, not a queued test's result
    repeats: list[CaseRecord] = field(default_factory=list)  # --repeat-new's other runs

    @property
    def flaky(self) -> bool:
        return not self.final.failed and bool(self.earlier_failures)

    @property
    def failed_runs(self) -> int:
        """Of a test run several times (--repeat-new), the runs that failed."""
        return sum(1 for run in (self.final, *self.repeats) if run.failed)

    def fold(self, repeat: CaseHistory) -> None:
        """Take in another run of this test: a failed run becomes the final result (the
        test failed), the other is kept among the repeats."""
        if repeat.final.failed and not self.final.failed:
            self.repeats.append(self.final)
            self.final, self.worker = repeat.final, repeat.worker
        else:
            self.repeats.append(repeat.final)
        self.earlier_failures.extend(repeat.earlier_failures)


@dataclass(frozen=True)
class NotRun:
    """A test that never got a final result: a queued unit no worker finished, or a test
    one worker collected that the queue never held (`collected_by` names that worker)."""

    unit: str
    collected_by: str | None = None

    def why(self, worker: Callable[[str], str] = str) -> str:
        """Why it did not run, the worker's id shown through `worker`."""
        if self.collected_by is None:
            return "no worker finished it"
        return f"collected by {worker(self.collected_by)} only, never queued"


@dataclass
class BuildReport:
    """Every case of the build, the units that never got a final result, and how busy each
    worker was."""

    cases: list[CaseHistory]
    missing: list[str]  # queued units no worker finished
    takeovers: dict[str, int]  # unit -> times its lease expired and another worker took it
    total_units: int
    strays: dict[str, str] = field(default_factory=dict)  # test -> the worker that collected it
    interrupted: bool = False  # collection errors stopped the build before any test ran
    usage: list[WorkerUsage] = field(default_factory=list)
    stopped_workers: list[StoppedWorker] = field(default_factory=list)  # breakers tripped
    trust: Trust = field(default_factory=Trust)  # how each failure stands (trust/classify.py)

    @classmethod
    def from_records(
        cls, records: list[BuildRecord], collection: CollectionRecord | None = None
    ) -> BuildReport:
        """The whole suite over a build's attempts, oldest first: each unit's latest final
        result, with every earlier failed attempt of it, from any build attempt; then what
        the current attempt's `collection` reported, first, as pytest's JUnit lists it."""
        with cyclic_gc_paused():
            build = cls._merge(records)
        if collection is not None:
            build.cases[:0] = [
                CaseHistory(report.case, report.case.nodeid, report.worker, collection=True)
                for report in collection.reports
            ]
            build.interrupted = collection.interrupted
        build.usage = worker_usage(records)
        return build

    @classmethod
    def _merge(cls, records: list[BuildRecord]) -> BuildReport:
        current = records[-1]
        units = list(dict.fromkeys(unit for record in records for unit in record.units))
        cases: list[CaseHistory] = []
        takeovers: dict[str, int] = {}
        for record in records:
            for unit, count in record.takeovers.items():
                takeovers[unit] = takeovers.get(unit, 0) + count
        for unit in units:
            latest = next((r for r in reversed(records) if unit in r.results), None)
            if latest is None:
                continue
            final = latest.results[unit]
            earlier = [
                attempt.record
                for record in records
                for attempt in record.attempts.get(unit, [])
                if attempt.record is not final
            ]
            cases.extend(_histories(base_unit(unit), final, earlier))
        if any(base_unit(unit) != unit for unit in units):
            cases = _fold_repeats(cases)
        known = set(units)
        strays = {
            test: worker
            for worker, tests in current.strays.items()
            for test in tests
            if test not in known
        }
        return cls(cases, current.missing, takeovers, len(units), strays)

    def count(self, outcome: str) -> int:
        return sum(1 for case in self.cases if case.final.outcome == outcome)

    @property
    def collection_errors(self) -> int:
        return sum(1 for case in self.cases if case.collection and case.final.failed)

    @property
    def flaky(self) -> list[CaseHistory]:
        return [case for case in self.cases if case.flaky]

    @property
    def failures(self) -> list[CaseHistory]:
        return [case for case in self.cases if case.final.failed]

    def unit_durations(self) -> dict[str, float]:
        """Seconds each finalized unit took, for the next build's ordering."""
        units: dict[str, float] = {}
        for case in self.cases:
            if not case.collection:
                units[case.unit] = units.get(case.unit, 0.0) + case.final.duration
        return units

    @property
    def quarantined(self) -> list[CaseHistory]:
        """Failures a quarantine entry excuses: reported apart, never failing the build."""
        return [case for case in self.failures if self.trust.excused(case.final.nodeid)]

    @property
    def blocking(self) -> list[CaseHistory]:
        """Failures that fail the build: every one not quarantined."""
        return [case for case in self.failures if not self.trust.excused(case.final.nodeid)]

    def repeated_runs(self) -> dict[str, tuple[int, int]]:
        """(failed runs, runs) of each failing test run several times (--repeat-new)."""
        return {
            case.final.nodeid: (case.failed_runs, 1 + len(case.repeats))
            for case in self.failures
            if case.repeats
        }

    def history_outcomes(self) -> dict[str, str]:
        """This build's outcome of each test that ran (passed, failed, or flaky), for the
        flaky history; skipped tests and collection reports say nothing of flakiness."""
        outcomes = {}
        for case in self.cases:
            if case.collection or case.final.outcome == "skipped":
                continue
            outcome = "failed" if case.final.failed else "flaky" if case.flaky else "passed"
            if case.final.failed and case.failed_runs <= len(case.repeats):
                outcome = "flaky"  # a new test that failed some of its runs, passed others
            outcomes[case.final.nodeid] = outcome
        return outcomes

    @property
    def failed(self) -> int:
        """Cases that failed or errored, collection errors included."""
        return len(self.failures)

    @cached_property
    def not_run(self) -> list[NotRun]:
        """The units no worker finished, in queue order, then the tests only one worker
        collected, by id."""
        return [NotRun(unit) for unit in self.missing] + [
            NotRun(test, worker) for test, worker in sorted(self.strays.items())
        ]

    @property
    def total(self) -> int:
        """Every test the build knows of: those with a final result and those not run."""
        return len(self.cases) + len(self.not_run)

    @property
    def title(self) -> str:
        """The build in one line, e.g. "120 tests, 117 passed, 2 failed, 1 flaky": only the
        counts that are not zero, beyond tests and passes. Skips are no passes; quarantined
        failures count as failed too."""
        skipped, flaky, not_run = self.count("skipped"), len(self.flaky), len(self.not_run)
        parts = [f"{len(self.cases)} tests", f"{self.count('passed')} passed"]
        parts += [f"{self.failed} failed"] if self.failed else []
        quarantined = len(self.quarantined)
        parts += [f"{quarantined} quarantined"] if quarantined else []
        parts += [f"{skipped} skipped"] if skipped else []
        parts += [f"{flaky} flaky"] if flaky else []
        parts += [f"{not_run} not run"] if not_run else []
        return ", ".join(parts)

    @property
    def exit_code(self) -> int:
        """0 all ran and passed, 1 all ran and some failed (a collection error counts, as in
        pytest; a quarantined failure does not), 2 collection errors stopped the build
        (pytest's "Interrupted"), 3 some did not run (lost, or collected by a worker but never
        queued)."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.not_run:
            return EXIT_INCOMPLETE
        return EXIT_FAILED if self.blocking else EXIT_PASSED

    def exit_code_after(self, verdict: Verdict) -> int:
        """The build's exit code once the summary stopped waiting with `verdict`. A build
        stopped by its failure cap (--max-failures, or -x / --maxfail N in the pytest command
        line), or by every worker's circuit breaker, exits 1, as pytest -x does: the failures
        are why, the tests not run after them are listed. Time running out, or no live
        worker, leaves it incomplete (3)."""
        if verdict is Verdict.INTERRUPTED:
            return EXIT_INTERRUPTED  # whatever of the collection record is still readable
        if verdict is Verdict.EXHAUSTED:
            return self.exit_code
        stopped = verdict in (Verdict.STOPPED, Verdict.TRIPPED)
        if stopped and self.failures and not self.interrupted:
            return EXIT_FAILED
        return EXIT_INTERRUPTED if self.interrupted else EXIT_INCOMPLETE


def interrupted_line(errors: int) -> str:
    """What the reports say of a build that collection errors stopped, as pytest says it."""
    return (
        f"Interrupted: {errors} error{'' if errors == 1 else 's'} during collection, so no "
        "test was queued (as plain pytest; --continue-on-collection-errors runs the rest)"
    )


def _fold_repeats(cases: list[CaseHistory]) -> list[CaseHistory]:
    """The cases with each test run several times (--repeat-new) counted once, its runs
    folded into the first."""
    first: dict[tuple[str, str], CaseHistory] = {}
    folded = []
    for case in cases:
        key = (case.unit, case.final.nodeid)
        if key in first:
            first[key].fold(case)
        else:
            first[key] = case
            folded.append(case)
    return folded


def _histories(unit: str, final: AttemptRecord, earlier: list[AttemptRecord]) -> list[CaseHistory]:
    histories = []
    for case in final.cases:
        failed_before = [
            old
            for attempt in earlier
            for old in attempt.cases
            if old.nodeid == case.nodeid and old.failed
        ]
        histories.append(CaseHistory(case, unit, final.worker, failed_before))
    return histories
