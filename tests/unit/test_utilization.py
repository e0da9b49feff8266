"""Per-worker utilization from the attempts of one or several build attempts."""

from __future__ import annotations

import pytest

from ciqueue_gha.queue.record import Attempt, AttemptRecord, BuildRecord, CaseRecord
from ciqueue_gha.report.utilization import WorkerUsage, worker_usage


def run(test: str, worker: str, start: float, duration: float, cases: int = 1) -> AttemptRecord:
    return AttemptRecord(
        unit=test,
        outcome="passed",
        worker=worker,
        started_at=start,
        duration=duration,
        cases=[CaseRecord(f"{test}::t{i}", "passed") for i in range(cases)],
    )


def record(*runs: tuple[AttemptRecord, str]) -> BuildRecord:
    attempts: dict[str, list[Attempt]] = {}
    for attempt, disposition in runs:
        attempts.setdefault(attempt.unit, []).append(Attempt(attempt, disposition))
    return BuildRecord(True, list(attempts), {}, attempts, {})


def test_busy_idle_and_span_over_all_workers() -> None:
    usage = worker_usage(
        [
            record(
                (run("a", "w1", 100.0, 4.0), "final"),
                (run("b", "w1", 104.0, 6.0), "final"),
                (run("c", "w2", 101.0, 2.0), "final"),
            )
        ]
    )
    # span: 100.0 to 110.0
    assert usage == [WorkerUsage("w1", 2, 2, 10.0, 0.0), WorkerUsage("w2", 1, 1, 2.0, 8.0)]
    assert usage[0].busy_percent == 100.0
    assert usage[1].busy_percent == pytest.approx(20.0)


def test_every_disposition_counts() -> None:
    usage = worker_usage(
        [
            record(
                (run("a", "w1", 0.5, 1.0), "requeued"),
                (run("a", "w2", 2.0, 1.0), "stale"),
                (run("a", "w2", 3.0, 1.0), "final"),
            )
        ]
    )
    assert [(u.worker, u.attempts, u.busy, u.idle) for u in usage] == [
        ("w1", 1, 1.0, 2.5),
        ("w2", 2, 2.0, 1.5),
    ]


def test_tests_run_counts_the_cases_of_file_units() -> None:
    (usage,) = worker_usage([record((run("tests/test_a.py", "w1", 1.0, 3.0, cases=5), "final"))])
    assert (usage.attempts, usage.tests_run) == (1, 5)


def test_idle_is_never_negative_under_clock_skew() -> None:
    # w2's clock runs behind: its attempts overlap less of the span than its busy time.
    usage = worker_usage(
        [
            record(
                (run("a", "w1", 100.0, 1.0), "final"),
                (run("b", "w2", 100.0, 0.6), "final"),
                (run("c", "w2", 100.2, 0.6), "final"),
            )
        ]
    )
    w2 = usage[1]
    assert w2.busy == pytest.approx(1.2)
    assert w2.idle == 0.0
    assert w2.busy_percent == 100.0


def test_re_runs_add_their_own_spans_not_the_gap_between_them() -> None:
    first = record((run("a", "w1", 100.0, 2.0), "final"), (run("b", "w2", 100.0, 4.0), "final"))
    rerun = record((run("b", "w1", 9000.0, 3.0), "final"))
    w1, w2 = worker_usage([first, rerun])
    assert (w1.busy, w1.idle) == (5.0, 2.0)  # idle 2 in the first (span 4), 0 in the re-run
    assert (w2.busy, w2.idle) == (4.0, 0.0)  # not in the re-run: its span is not w2's idle


def test_workers_in_natural_order_and_untimed_attempts() -> None:
    usage = worker_usage(
        [
            record(
                (run("a", "worker-10", 0.0, 3.0), "final"),
                (run("b", "worker-2", 0.0, 1.0), "final"),
            )
        ]
    )
    assert [u.worker for u in usage] == ["worker-2", "worker-10"]
    # No start times: the span is the busiest worker's busy time.
    assert [(u.busy, u.idle) for u in usage] == [(1.0, 2.0), (3.0, 0.0)]


def test_no_attempts_no_usage() -> None:
    assert worker_usage([record()]) == []
    assert WorkerUsage("w", 0, 0, 0.0, 0.0).busy_percent == 0.0
