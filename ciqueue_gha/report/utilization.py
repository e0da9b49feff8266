"""How busy each worker was: whether the matrix was balanced, from the attempts it ran.

Every attempt counts, whatever the queue made of it (final, requeued, stale): a stale
attempt still kept its worker busy. Busy time is the sum of a worker's attempt durations.
The span of a build attempt is its first start to its last end over all workers; a worker's
idle time is that span minus its busy time, never negative. Over several build attempts
(re-runs) the spans add up, each counted only for the workers that ran in it, so the hours
between a run and its re-run are nobody's idle time.

Start times come from each runner's clock; a little skew between runners only moves the
span. Attempts with no start time (0) count as busy time but not in the span; when no
attempt has one, the span is the busiest worker's busy time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..queue.record import AttemptRecord, BuildRecord


@dataclass(frozen=True)
class WorkerUsage:
    """One worker over the build: what it ran and for how long it was busy or idle."""

    worker: str
    attempts: int  # queued units it executed (a test, or a file of tests)
    tests_run: int  # test cases in those units
    busy: float  # seconds
    idle: float  # seconds

    @property
    def span(self) -> float:
        return self.busy + self.idle

    @property
    def busy_percent(self) -> float:
        """Share of the span the worker was busy, 0 to 100."""
        return 100.0 * self.busy / self.span if self.span > 0 else 0.0


def worker_usage(records: list[BuildRecord]) -> list[WorkerUsage]:
    """Per worker, in natural order of their ids (worker-2 before worker-10)."""
    usage: dict[str, WorkerUsage] = {}
    for record in records:
        for worker, used in _record_usage(record).items():
            before = usage.get(worker)
            usage[worker] = used if before is None else _sum(before, used)
    return [usage[worker] for worker in sorted(usage, key=_natural)]


def _record_usage(record: BuildRecord) -> dict[str, WorkerUsage]:
    runs = [attempt.record for history in record.attempts.values() for attempt in history]
    by_worker: dict[str, list[AttemptRecord]] = {}
    for run in runs:
        by_worker.setdefault(run.worker, []).append(run)
    busy = {worker: sum(run.duration for run in ran) for worker, ran in by_worker.items()}
    span = _span(runs) or max(busy.values(), default=0.0)
    return {
        worker: WorkerUsage(
            worker,
            attempts=len(ran),
            tests_run=sum(max(1, len(run.cases)) for run in ran),
            busy=busy[worker],
            idle=max(0.0, span - busy[worker]),
        )
        for worker, ran in by_worker.items()
    }


def _sum(a: WorkerUsage, b: WorkerUsage) -> WorkerUsage:
    return WorkerUsage(
        a.worker,
        a.attempts + b.attempts,
        a.tests_run + b.tests_run,
        a.busy + b.busy,
        a.idle + b.idle,
    )


def _span(runs: list[AttemptRecord]) -> float:
    timed = [run for run in runs if run.started_at > 0]
    if not timed:
        return 0.0
    return max(run.started_at + run.duration for run in timed) - min(
        run.started_at for run in timed
    )


def _natural(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]
