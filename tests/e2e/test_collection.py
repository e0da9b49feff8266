"""Collection is part of the result, and -x / --maxfail stop the whole build (issue 10,
findings 10 and 12), end to end through the CLI on a real redis-server, against plain pytest.

A file that fails to import, with and without --continue-on-collection-errors, and files
skipped whole at import: through `run --workers 2` and through two `worker`s and a `summary`,
the merged JUnit holds the same testcases, errors and skips as plain pytest's --junitxml, the
counts are pytest's and so is the exit code. With -x, two workers: the build stops after the
first failure, exits 1, and every test is either run once or reported not run.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INFRASTRUCTURE, EXIT_INTERRUPTED, EXIT_PASSED
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.redis_server import PrivateRedis
from ciqueue_gha.report.junit import junit_names
from tests.e2e.test_runner import (
    Command,
    Commands,
    JUnitCase,
    clean_env,
    cli,
    copy_suite,
    junit_by_case,
    new_build_id,
    plain_pytest,
    read_log,
)
from tests.e2e.test_runner import commands as commands  # the fixture

#: The pytest command line of each case, and what plain pytest exits with on it.
CASES = {
    "collection error": ([], EXIT_INTERRUPTED),
    "continue on collection errors": (["--continue-on-collection-errors"], EXIT_FAILED),
    "module-level skips": (["--ignore=check_broken_import.py"], EXIT_PASSED),
}
SHAPES = ["run", "matrix"]
BROKEN = "check_broken_import.py"
SKIPPED = ["check_skipped_import.py", "check_skipped_platform.py"]


# --- a JUnit file's shape: what plain pytest's and ours must agree on -------------------------


#: A testcase's results: each child's tag, and its message where pytest fixes it
#: ("collection failure", "collection skipped").
Results = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class JUnitShape:
    """The suite's totals and each testcase's results, by (classname, name)."""

    totals: dict[str, int]
    cases: dict[JUnitCase, Results]


def junit_shape(path: Path) -> JUnitShape:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert len(suites) == 1, f"{path.name}: {len(suites)} test suites"
    totals = {name: int(suites[0].get(name, "-1")) for name in TOTALS}
    cases: dict[JUnitCase, Results] = {}
    for case in suites[0].iter("testcase"):
        name = (case.get("classname", ""), case.get("name", ""))
        assert name not in cases, f"{path.name} names {name} twice"
        cases[name] = tuple(
            (child.tag, _fixed_message(child.get("message")))
            for child in case
            if child.tag in ("failure", "error", "skipped")
        )
    return JUnitShape(totals, cases)


TOTALS = ("tests", "failures", "errors", "skipped")


def _fixed_message(message: str | None) -> str | None:
    return message if message in ("collection failure", "collection skipped") else None


# --- plain pytest over the same suite ----------------------------------------------------------


@dataclass(frozen=True)
class PlainRun:
    code: int
    junit: JUnitShape
    ran: list[str]  # node ids its tests logged, in order


@pytest.fixture(scope="module")
def plain_collection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PlainRun]]:
    """Plain pytest with --junitxml over the collection suite, once per case, all at once."""
    tmp = tmp_path_factory.mktemp("plain-collection")
    started = Commands(tmp)
    try:
        runs = {}
        for index, (case, (args, _)) in enumerate(CASES.items()):
            suite = copy_suite("collection", tmp / str(index))
            env = clean_env(tmp, SUITE_LOG=str(tmp / f"{index}.log"))
            argv = [*plain_pytest(), "-q", f"--junitxml={tmp / f'{index}.xml'}", *args]
            runs[case] = (index, started.start(f"plain-{index}", argv, cwd=suite, env=env))
        yield {
            case: PlainRun(
                command.wait(),
                junit_shape(tmp / f"{index}.xml"),
                [nodeid for _, nodeid in read_log(tmp / f"{index}.log")],
            )
            for case, (index, command) in runs.items()
        }
    finally:
        started.stop()


# --- the build through the CLI -----------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """A finished build: the command that reported it (run, or summary) and its workers'
    exit codes (matrix only)."""

    report: Command
    worker_codes: list[int]

    @property
    def code(self) -> int:
        return self.report.process.returncode


def run_build(
    shape: str,
    commands: Commands,
    suite: Path,
    env: dict[str, str],
    build: list[str],
    merged: Path,
    pytest_args: list[str],
) -> Build:
    """`run --workers 2`, or two `worker`s and a `summary` (the matrix), on build `build`."""
    report = ["--junit-xml", str(merged), "--inactive-workers-timeout", "60"]
    if shape == "run":
        argv = [*cli(), "run", "--workers", "2", *build, *report, "--", *pytest_args]
        return Build(commands.run("run", argv, cwd=suite, env=env), [])
    summary = commands.start("summary", [*cli(), "summary", *build, *report], cwd=suite, env=env)
    workers = [
        commands.start(
            f"worker-{index}",
            [*cli(), "worker", *build, "--worker-id", f"w{index}", "--", "pytest", *pytest_args],
            cwd=suite,
            env=env,
        )
        for index in range(2)
    ]
    codes = [worker.wait() for worker in workers]
    summary.wait()
    return Build(summary, codes)


def counts_line(totals: dict[str, int], passed: int) -> str:
    """The counts the summary prints for pytest's JUnit totals (no flaky tests here)."""
    return (
        f"{totals['tests']} tests, {passed} passed, {totals['failures']} failed, "
        f"{totals['errors']} errors, {totals['skipped']} skipped, 0 flaky"
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", list(CASES))
def test_collection_is_reported_as_plain_pytest_reports_it(
    case: str,
    shape: str,
    plain_collection: dict[str, PlainRun],
    commands: Commands,
    tmp_path: Path,
    redis_server: PrivateRedis,
    client: redis.Redis,
) -> None:
    pytest_args, expected_code = CASES[case]
    plain = plain_collection[case]
    assert plain.code == expected_code, "the suite no longer does what this test says"
    suite = copy_suite("collection", tmp_path)
    log, merged = tmp_path / "ran.log", tmp_path / "merged.xml"
    build_id = new_build_id("collection")
    build = run_build(
        shape,
        commands,
        suite,
        clean_env(tmp_path, SUITE_LOG=str(log)),
        ["--redis-url", redis_server.url, "--build-id", build_id],
        merged,
        pytest_args,
    )
    output = build.report.output()
    stdout = build.report.stdout.read_text()

    # The exit code, the JUnit and the counts are plain pytest's.
    assert build.code == expected_code, output
    ours = junit_shape(merged)
    assert ours == plain.junit, (ours, plain.junit)
    passed = ours.totals["tests"] - sum(ours.totals[k] for k in ("failures", "errors", "skipped"))
    assert counts_line(ours.totals, passed) in stdout, stdout
    assert "Traceback (most recent call last)" not in output

    # Each test ran once, over both workers, as the tests plain pytest ran: none at all when
    # a collection error interrupts the build.
    ran = Counter(nodeid for _, nodeid in read_log(log))
    assert ran == Counter(plain.ran), (ran, plain.ran)
    assert set(ran.values()) <= {1}
    if build.worker_codes:  # a worker exits as its pytest would
        assert build.worker_codes == [expected_code, expected_code], output

    # Recorded once per build, though both workers hit them.
    recorded = client.hgetall(BuildKeys(build_id).key("collection"))
    collectors = SKIPPED if "--ignore" in " ".join(pytest_args) else [BROKEN, *SKIPPED]
    assert sorted(recorded) == sorted(collectors)  # type: ignore[arg-type]
    assert {json.loads(text)["worker"] for text in recorded.values()} <= {  # type: ignore[union-attr]
        "w0",
        "w1",
        "worker-0",
        "worker-1",
    }
    if expected_code == EXIT_INTERRUPTED:
        assert "Interrupted: 1 error during collection" in stdout, stdout
        assert not client.exists(BuildKeys(build_id).key("tests"))  # nothing was queued
    if BROKEN in collectors:
        # The error's row names the line that failed to import, for the annotation.
        assert f"ERROR {BROKEN} ({BROKEN}:" in stdout, stdout
        assert "No module named 'a_module_nobody_installed'" in stdout


# --- -x with two workers -------------------------------------------------------------------------


FAILING = "check_exitfirst.py::test_step[3]"
#: Tests another worker may start after the failing test ended: the one it held reserved
#: ahead, and one it reserved in the few milliseconds before Redis counted the failure (a
#: worker that did not stop would start dozens).
STARTED_AFTER_FAILURE = 3


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_exitfirst_stops_every_worker_of_the_build(
    shape: str, commands: Commands, tmp_path: Path, redis_server: PrivateRedis, client: redis.Redis
) -> None:
    suite = copy_suite("exitfirst", tmp_path)
    log, merged = tmp_path / "ran.log", tmp_path / "merged.xml"
    env = clean_env(tmp_path, SUITE_LOG=str(log))
    plain = commands.run("plain", [*plain_pytest(), "-q", "-x"], cwd=suite, env=env)
    assert plain.process.returncode == EXIT_FAILED, plain.output()
    log.unlink()
    build_id = new_build_id("exitfirst")
    build = run_build(
        shape,
        commands,
        suite,
        env,
        ["--redis-url", redis_server.url, "--build-id", build_id],
        merged,
        ["-q", "-x"],
    )
    output, stdout = build.report.output(), build.report.stdout.read_text()
    assert build.code == EXIT_FAILED, output
    if build.worker_codes:
        assert build.worker_codes == [EXIT_FAILED, EXIT_FAILED], output

    queue: list[str] = client.lrange(BuildKeys(build_id).key("tests"), 0, -1)  # type: ignore[assignment]
    assert len(queue) == 40
    events = read_log(log)
    starts = [
        (worker, nodeid, float(at)) for worker, nodeid, event, at in events if event == "start"
    ]
    started = Counter(nodeid for _, nodeid, _ in starts)
    assert set(started.values()) == {1}, started  # none ran twice
    (failed_by, failed_at) = next(
        (worker, float(at))
        for worker, nodeid, event, at in events
        if nodeid == FAILING and event == "end"
    )
    # Every worker stops taking tests: the one that saw the failure at once, the other
    # within the unit it held reserved ahead.
    for worker in {worker for worker, _, _ in starts}:
        late = [nodeid for who, nodeid, at in starts if who == worker and at > failed_at]
        limit = 0 if worker == failed_by else STARTED_AFTER_FAILURE
        assert len(late) <= limit, (worker, late)

    # The tests not run are reported consistently: in the JUnit, the text and the counts.
    not_run = [nodeid for nodeid in queue if nodeid not in started]
    assert not_run, "the build was to stop well before its end"
    cases = junit_by_case(merged)
    assert set(cases) == {junit_names(nodeid) for nodeid in queue}
    for nodeid in queue:
        expected = "failed" if nodeid == FAILING else "passed" if nodeid in started else "error"
        assert cases[junit_names(nodeid)].outcome == expected, nodeid
    for nodeid in not_run:
        assert f"NOT RUN {nodeid}" in stdout
    passed = len(started) - 1
    assert f"{len(started)} tests, {passed} passed, 1 failed, 0 errors, 0 skipped" in stdout
    assert f"{len(not_run)} NOT RUN" in stdout
    assert "stopped by --max-failures (or -x / --maxfail" in stdout
    assert "Traceback (most recent call last)" not in output


# --- a lost collection record is never a green build ---------------------------------------------


@pytest.mark.parametrize("lost", [["collection", "collected"], ["collected"], ["collection"]])
def test_lost_collection_record_is_queue_state_lost(
    lost: list[str],
    commands: Commands,
    tmp_path: Path,
    redis_server: PrivateRedis,
    client: redis.Redis,
) -> None:
    """The build ran (with a collection error, so its only failure is in the collection
    record); the record is then evicted: the summary says queue state lost, exit 4."""
    suite = copy_suite("collection", tmp_path)
    build_id = new_build_id("collection-lost")
    build = ["--redis-url", redis_server.url, "--build-id", build_id]
    env = clean_env(tmp_path)
    args = ["--", "--continue-on-collection-errors"]
    worker = commands.run(
        "worker", [*cli(), "worker", *build, "--worker-id", "w", *args], cwd=suite, env=env
    )
    assert worker.process.returncode == EXIT_FAILED, worker.output()
    keys = BuildKeys(build_id)
    client.delete(*(keys.key(name) for name in lost))
    summary = commands.run(
        "summary",
        [*cli(), "summary", *build, "--junit-xml", str(tmp_path / "m.xml")],
        cwd=suite,
        env=env,
    )
    assert summary.process.returncode == EXIT_INFRASTRUCTURE, summary.output()
    errors = [
        line for line in summary.output().splitlines() if line.startswith("ciqueue-gha: error:")
    ]
    assert errors == [
        f"ciqueue-gha: error: the collection record of build {build_id} attempt 1 is gone "
        "from Redis (evicted or expired): queue state lost"
    ], summary.output()
    assert "Traceback" not in summary.output()
