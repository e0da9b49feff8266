"""What the report makes of trust/: the exit code with quarantined failures, each test's
outcome for the flaky history, repeated runs counted once, and each failure's standing."""

from __future__ import annotations

import datetime as dt

from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED
from ciqueue_gha.queue.record import AttemptRecord, BuildRecord, CaseRecord
from ciqueue_gha.report.build import BuildReport, CaseHistory
from ciqueue_gha.trust.classify import classify
from ciqueue_gha.trust.history import TestOutcomes
from ciqueue_gha.trust.quarantine import Entry, Quarantine
from ciqueue_gha.trust.repeat import base_unit, repeat_unit, with_repeats

TODAY = dt.date(2026, 12, 7)


def case(nodeid: str, outcome: str, failed_before: int = 0) -> CaseHistory:
    earlier = [CaseRecord(nodeid, "failed")] * failed_before
    return CaseHistory(CaseRecord(nodeid, outcome), nodeid, "w1", earlier)


def test_only_quarantined_failures_pass_the_build_and_the_title_says_so() -> None:
    build = BuildReport([case("t.py::a", "passed"), case("t.py::q", "failed")], [], {}, 2)
    assert build.exit_code == EXIT_FAILED
    build.trust = classify(["t.py::q"], Quarantine((Entry("t.py::q"),), TODAY), {})
    assert build.exit_code == EXIT_PASSED
    assert build.title == "2 tests, 1 passed, 1 failed, 1 quarantined"
    assert [c.final.nodeid for c in build.quarantined] == ["t.py::q"] and build.blocking == []
    build.trust = classify(
        ["t.py::q"], Quarantine((Entry("t.py::q", TODAY),), TODAY.replace(day=8)), {}
    )
    assert build.exit_code == EXIT_FAILED  # the entry expired


def test_history_outcomes_passed_failed_flaky_and_skips_left_out() -> None:
    build = BuildReport(
        [
            case("t.py::p", "passed"),
            case("t.py::f", "failed"),
            case("t.py::k", "passed", failed_before=1),
            case("t.py::s", "skipped"),
        ],
        [],
        {},
        4,
    )
    assert build.history_outcomes() == {
        "t.py::p": "passed",
        "t.py::f": "failed",
        "t.py::k": "flaky",
    }


def attempt(unit: str, nodeid: str, outcome: str, worker: str) -> AttemptRecord:
    return AttemptRecord(unit, outcome, worker, cases=[CaseRecord(nodeid, outcome)])


def test_a_repeated_test_counts_once_and_fails_when_a_run_fails() -> None:
    test = "t.py::new"
    units = with_repeats(["t.py::old", test], [test], 3)
    assert units[2:] == [repeat_unit(test, 2), repeat_unit(test, 3)]
    assert base_unit(units[3]) == test and base_unit("t.py::x@@repeat-y") == "t.py::x@@repeat-y"
    outcomes = {"t.py::old": "passed", test: "passed", units[2]: "failed", units[3]: "passed"}
    results = {
        unit: attempt(unit, base_unit(unit), o, f"w{i}")
        for i, (unit, o) in enumerate(outcomes.items())
    }
    record = BuildRecord(True, units, results, {}, {})

    build = BuildReport.from_records([record])

    assert [c.final.nodeid for c in build.cases] == ["t.py::old", test]
    new = build.cases[1]
    assert (new.final.outcome, new.worker, new.failed_runs, len(new.repeats)) == (
        "failed",
        "w2",
        1,
        2,
    )
    assert build.repeated_runs() == {test: (1, 3)} and build.unit_durations().keys() == {
        "t.py::old",
        test,
    }
    assert build.history_outcomes()[test] == "flaky"
    build.trust = classify([test], Quarantine((), TODAY), {}, build.repeated_runs())
    standing = build.trust.standing(test)
    assert (
        standing is not None
        and standing.describe() == "new flaky: a new test that failed 1 of its 3 runs"
    )
    assert build.exit_code == EXIT_FAILED


def test_each_failure_stands_new_known_flaky_or_still_failing() -> None:
    at = 1_765_000_000
    history = {
        "t.py::k": TestOutcomes("t.py::k", (("1", at, "failed"), ("2", at, "passed"))),
        "t.py::f": TestOutcomes("t.py::f", (("1", at, "failed"), ("2", at, "failed"))),
        "t.py::p": TestOutcomes("t.py::p", (("1", at, "passed"),)),
    }
    trust = classify(["t.py::k", "t.py::f", "t.py::p", "t.py::n"], Quarantine((), TODAY), history)
    described = {test: standing.describe() for test, standing in trust.standings.items()}
    assert described == {
        "t.py::k": "known flaky: failed in 1 of 2 recent builds (50%)",
        "t.py::f": "still failing: failed in each of its 2 recent builds",
        "t.py::p": "new failure: never failed in its recent builds",
        "t.py::n": "new failure: not seen before",
    }
