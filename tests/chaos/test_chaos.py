"""The fault-injection suite: the demo suite (examples/demo) over three `ciqueue-gha worker`
processes and a `ciqueue-gha summary`, round after round, under faults drawn from a seeded
RNG (see plan.py): workers killed (and replaced) or stopped past their lease, Redis
restarted from its append-only file, the TCP proxy between the workers and Redis resetting
or holding every connection, a worker whose clock is an hour off, and one round where every
worker is killed and none replaced.

After every round, whatever the faults did:
- the merged JUnit file holds every test `pytest --collect-only` lists, each exactly once;
  a test may be missing from the results only in the round where every worker was killed,
  and then it is an error "not run" in the JUnit file and a NOT RUN line of the summary;
- the summary did not exit before the last lease holder finished: every final attempt ended
  before the merged JUnit file was written, and an attempt that ended after the summary
  exited is a stale one, of a test already finalized under another lease;
- the summary's exit code is what happened: 3 when tests were lost, else 1 when a test
  failed for good (DEMO_FAIL=1), else 0 (the flaky test passes when requeued);
- every attempt's start time is on one clock, the skewed worker's included;
- workers end 0 or 1 (or killed), and nothing prints a traceback.

CHAOS_SEED and CHAOS_ROUNDS choose the run; the project's `./check` runs the defaults. The
last test checks that every kind of fault was injected at least once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from ciqueue_gha.report.junit import junit_names
from tests.chaos.clock import ClockSkewer
from tests.chaos.plan import CLOCK_SKEW, FAULT_KINDS, RoundPlan, draw_plans
from tests.chaos.processes import RoundResult, clean_env
from tests.chaos.round import ChaosRound
from tests.chaos.tally import TALLY, TALLY_PROPERTY

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SEED = int(os.environ.get("CHAOS_SEED") or 20261128)
ROUNDS = int(os.environ.get("CHAOS_ROUNDS") or 10)
PLANS = draw_plans(SEED, ROUNDS)

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"

FLAKY = "test_flaky_and_env.py::test_flaky_under_the_queue"
FAILS_WHEN_ASKED = "test_flaky_and_env.py::test_fails_when_asked"
SKIPPED = {"test_math.py::test_skipped", "test_math.py::test_expected_failure"}

#: Slack for comparing a process's times with the driver's: file times are kept at the
#: kernel's coarse clock (a few ms), and the driver notices an exit within one tick.
SLACK = 0.05


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo suite, so no round writes into examples/."""
    folder = tmp_path_factory.mktemp("demo")
    for path in DEMO.glob("*.py"):
        shutil.copy(path, folder)
    return folder


@pytest.fixture(scope="module")
def collected(suite: Path) -> list[str]:
    """The suite's test ids as plain pytest collects them."""
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=suite,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    ids = [line for line in listed.splitlines() if "::" in line]
    assert len(ids) == len(set(ids)) > 30, listed
    return ids


@pytest.fixture(scope="module")
def skewer() -> ClockSkewer:
    """The way to put a worker's clock an hour off here, checked to work."""
    skewer = ClockSkewer.find(CLOCK_SKEW)
    for skew in (CLOCK_SKEW, -CLOCK_SKEW):
        seen = skewer.probe(skew)
        assert abs(seen - skew) < 60, f"{skewer.mechanism} skews the clock {seen:+.0f} s"
    TALLY.clock_mechanism = skewer.mechanism
    return skewer


@pytest.fixture(scope="module", autouse=True)
def tally() -> None:
    TALLY.seed, TALLY.planned_rounds = SEED, ROUNDS


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: f"round{plan.index}")
def test_round(
    plan: RoundPlan,
    suite: Path,
    collected: list[str],
    skewer: ClockSkewer,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    result = ChaosRound(plan, tmp_path, suite, skewer).play()
    TALLY.seconds += result.ended_at - result.started_at
    TALLY.rounds += 1
    TALLY.exits[result.summary_code] += 1
    skewed_ran = skew_took_effect(result)
    for what, count in result.injected.items():
        (TALLY.injected if what in FAULT_KINDS else TALLY.details)[what] += count
    TALLY.injected["clock_skew"] += skewed_ran
    record_property(TALLY_PROPERTY, TALLY.line())  # for the terminal summary, even from xdist

    logs = result.logs()
    assert_no_traceback(result)
    missing = assert_each_test_once(result, collected)
    assert_exit_code(result, collected, missing)
    assert_summary_outlived_lease_holders(result)
    assert_one_clock(result)
    assert_worker_exits(result)
    assert result.plan.lose_all == bool(missing), logs


def test_every_fault_kind_was_injected() -> None:
    """The rounds above reached something with every kind of fault, and ran to the end."""
    assert TALLY.rounds == ROUNDS, (
        f"{TALLY.rounds} of {ROUNDS} rounds ran: run the whole module for this check"
    )
    for kind in FAULT_KINDS:
        assert TALLY.injected[kind] > 0, f"no {kind} fault was injected: {TALLY.line()}"
    details = ["kill all", "kill mid-test"]
    details += ["proxy reset", "proxy pause"] if ROUNDS >= 3 else []  # planned from 3 rounds up
    for detail in details:
        assert TALLY.details[detail] > 0, f"no {detail}: {TALLY.line()}"
    assert TALLY.exits[3] > 0 and TALLY.exits[0] > 0, TALLY.line()


# --- the checks -------------------------------------------------------------------------------


def junit_cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


def case_key(case: ET.Element) -> tuple[str, str]:
    return case.get("classname", ""), case.get("name", "")


def results_of(case: ET.Element) -> list[str]:
    return [child.tag for child in case if child.tag in ("failure", "error", "skipped")]


def assert_no_traceback(result: RoundResult) -> None:
    """No process crashed; a worker's stdout is pytest's report, where failures belong."""
    for name in ["summary", *result.workers]:
        assert "Traceback" not in result.stderr(name), f"{name}:\n{result.logs()}"
    assert "Traceback" not in result.stdout("summary"), result.logs()


def assert_each_test_once(result: RoundResult, collected: list[str]) -> list[str]:
    """Every collected test once in the merged JUnit; returns those that never finished,
    each of which must be an error "not run" there and a NOT RUN line of the summary."""
    logs = result.logs()
    cases = junit_cases(result.junit)
    counts = Counter(case_key(case) for case in cases)
    assert counts == Counter(junit_names(test) for test in collected), logs
    assert sorted(result.record.units) == sorted(collected), logs
    missing = [test for test in collected if test not in result.record.results]
    by_key = {case_key(case): case for case in cases}
    summary_lines = result.stdout("summary").splitlines()
    for test in missing:
        error = by_key[junit_names(test)].find("error")
        assert error is not None and error.get("message", "").startswith("not run"), logs
        assert f"NOT RUN {test}" in summary_lines, logs
    return missing


def failed_for_a_reason(result: RoundResult, test: str) -> bool:
    """Whether `test` may have failed for good in this round."""
    if test == FAILS_WHEN_ASKED:
        return result.plan.demo_fail
    # The flaky test fails once per build. When that failing run loses its lease before it
    # reports, and the worker that took it over loses its own too, the queue finalizes the
    # test from the completed (failing) run instead of running it again, as designed.
    return test == FLAKY and result.record.takeovers.get(test, 0) > 0


def assert_exit_code(result: RoundResult, collected: list[str], missing: list[str]) -> None:
    logs = result.logs()
    failed = sorted(test for test, run in result.record.results.items() if run.failed)
    for test in failed:
        assert failed_for_a_reason(result, test), f"{test} failed\n{logs}"
    if result.plan.demo_fail and FAILS_WHEN_ASKED not in missing:
        assert FAILS_WHEN_ASKED in failed, logs
    for test, run in result.record.results.items():
        expected = "skipped" if test in SKIPPED else run.outcome if test in failed else "passed"
        assert run.outcome == expected, f"{test}: {run.outcome}\n{logs}"
    expected_code = 3 if missing else 1 if failed else 0
    assert result.summary_code == expected_code, logs
    flaky_failures = [a for a in result.record.attempts.get(FLAKY, []) if a.record.failed]
    if FLAKY in result.record.results and FLAKY not in failed and flaky_failures:
        flaky = next(c for c in junit_cases(result.junit) if case_key(c) == junit_names(FLAKY))
        assert flaky.find("flakyFailure") is not None, logs


def attempt_end(started_at: float, duration: float) -> float:
    return started_at + duration


def describe_attempts(result: RoundResult, test: str, written: float) -> str:
    """One line per attempt at `test`: who ran it under which lease, when (relative to the
    merged JUnit's writing), and how it was counted."""
    lines = []
    for attempt in result.record.attempts.get(test, []):
        run = attempt.record
        start = run.started_at - written
        lines.append(
            f"  lease {run.lease} by {run.worker}: {start:+.3f} s to "
            f"{start + run.duration:+.3f} s, {run.outcome}, {attempt.disposition}"
        )
    return "\n".join(lines)


def assert_summary_outlived_lease_holders(result: RoundResult) -> None:
    """The summary waited for every final attempt; only stale ones may end after it."""
    logs = result.logs()
    written = result.junit.stat().st_mtime
    assert written <= result.summary_exit + SLACK, logs
    for test, final in result.record.results.items():
        end = attempt_end(final.started_at, final.duration)
        assert end <= written + SLACK, (
            f"{test} ended {end - written:.3f} s after the merged JUnit was written; its "
            f"attempts:\n{describe_attempts(result, test, written)}\n{logs}"
        )
    for test, attempts in result.record.attempts.items():
        for attempt in attempts:
            run = attempt.record
            if attempt_end(run.started_at, run.duration) <= result.summary_exit:
                continue
            final = result.record.results.get(test)
            late = f"{test} under lease {run.lease} ended after the summary exited"
            assert attempt.disposition == "stale", f"{late}\n{logs}"
            assert final is not None and final.lease != run.lease, f"{late}\n{logs}"


def assert_one_clock(result: RoundResult) -> None:
    """Every attempt's start lies within the round on the driver's clock, which is Redis's
    here: a worker whose clock is an hour off records its attempts on Redis's clock too."""
    for test, attempts in result.record.attempts.items():
        for attempt in attempts:
            run = attempt.record
            assert result.started_at - SLACK <= run.started_at <= result.ended_at, (
                f"{test} by {run.worker} started {run.started_at - result.started_at:+.1f} s "
                f"into the round\n{result.logs()}"
            )


def skew_took_effect(result: RoundResult) -> bool:
    """Whether the skewed worker ran tests; when it wrote its own JUnit file, its pytest
    session's timestamp (its own clock) shows the skew, and the others' show none."""
    ran = Counter(a.record.worker for runs in result.record.attempts.values() for a in runs)
    for name, proc in result.workers.items():
        own = result.folder / f"{name}.xml"
        if proc.killed or not own.exists():
            continue
        stamp = ET.parse(own).getroot().find("testsuite")
        assert stamp is not None, name
        seen = datetime.fromisoformat(stamp.get("timestamp", "")).timestamp()
        offset = seen - result.started_at
        assert proc.skew - 5 <= offset <= proc.skew + 60, f"{name}: clock {offset:+.0f} s"
    return any(proc.skew and ran[name] for name, proc in result.workers.items())


def assert_worker_exits(result: RoundResult) -> None:
    """Killed workers died of SIGKILL; the others ended 0, or 1 when a test they finalized
    failed."""
    logs = result.logs()
    failed_by = Counter(run.worker for run in result.record.results.values() if run.failed)
    for name, proc in result.workers.items():
        code = proc.popen.returncode
        if proc.killed:
            assert code == -9, f"{name} exited {code}\n{logs}"
        else:
            assert code in (0, 1), f"{name} exited {code}\n{logs}"
            assert code == 0 or failed_by[name] > 0, f"{name} exited 1\n{logs}"
