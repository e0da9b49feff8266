"""The pytest runner end to end, as a user runs it: `ciqueue-gha run`, or `ciqueue-gha worker`
processes and a `ciqueue-gha summary` sharing a build id (the GitHub matrix shape), on a real
redis-server, compared with plain pytest over the same suite.

The demo suite runs in place (examples/demo); the other suites live in suites/ (files
check_*.py, never collected by the project's own run) and run from a copy of their folder.
Their tests leave lines in the file $SUITE_LOG names, so the driving test knows which worker
ran which test and set up or tore down which fixture.

Every process a test starts runs in a process group of its own and is stopped when the test
ends, whatever happened (the `commands` fixture).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ciqueue_gha import durations
from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED
from ciqueue_gha.options import durations_namespace
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.redis_server import PrivateRedis
from ciqueue_gha.report.junit import junit_names
from tests.support.child_pytest import UNUSED_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).resolve().parent / "suites"
DEMO = "examples/demo"
DEMO_FLAKY = "examples/demo/test_flaky_and_env.py::test_flaky_under_the_queue"
DEMO_FAILING = "examples/demo/test_flaky_and_env.py::test_fails_when_asked"

#: Longest any one command may take before the test fails instead of hanging.
COMMAND_LIMIT = 90.0

#: Seconds a stopped command gets to clean up (its workers, its Redis) after SIGINT.
STOP_GRACE = 10.0

#: Requeue flags that let the demo's flaky test pass on its second attempt.
REQUEUE = ["--max-requeues", "1", "--requeue-tolerance", "0.1"]

_builds = itertools.count(1)

JUnitCase = tuple[str, str]  # (classname, name), as pytest's --junitxml names a test


def cli() -> list[str]:
    """The installed `ciqueue-gha` entry point, as a user runs it."""
    script = Path(sys.executable).with_name("ciqueue-gha")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ciqueue_gha.cli"]


def plain_pytest() -> list[str]:
    return [sys.executable, "-m", "pytest"]


def new_build_id(what: str) -> str:
    return f"runner-{what}-{os.getpid()}-{next(_builds)}"


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """This environment without CIQUEUE_*, GitHub, pytest or demo variables leaking in; the
    temporary folder (where the demo's flaky test keeps its marker) inside `tmp`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CIQUEUE_", "GITHUB_", "PYTEST_", "DEMO_", "SUITE_"))
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(tmp), **extra)
    # Every pytest these tests start, plain or a worker: no cache folders, and not the
    # hypothesis plugin of the dev environment (seconds of start-up, for suites without it).
    env["PYTEST_ADDOPTS"] = f"-p no:cacheprovider {UNUSED_PLUGINS}"
    return env


@dataclass
class Command:
    """A started process, its output in files."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def wait(self, timeout: float = COMMAND_LIMIT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not finish within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


@dataclass
class Commands:
    """Every process a test starts, each in a process group of its own; `stop` ends those
    still running: SIGINT first (`ciqueue-gha run` then stops its workers and its Redis),
    SIGKILL to the group after a grace period."""

    folder: Path
    started: list[Command] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str]) -> Command:
        stdout, stderr = self.folder / f"{name}.out", self.folder / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
            )
        command = Command(name, process, stdout, stderr)
        self.started.append(command)
        return command

    def run(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str]) -> Command:
        command = self.start(name, argv, cwd=cwd, env=env)
        command.wait()
        return command

    def stop(self) -> None:
        running = [c for c in self.started if c.process.poll() is None]
        for command in running:
            with suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(command.process.pid, signal.SIGINT)
        for command in running:
            try:
                command.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):  # it ended meanwhile
                    os.killpg(command.process.pid, signal.SIGKILL)
                command.process.wait()


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    started = Commands(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def copy_suite(name: str, tmp: Path) -> Path:
    return Path(shutil.copytree(SUITES / name, tmp / name))


# --- reading results ------------------------------------------------------------------------


@dataclass(frozen=True)
class JUnitResult:
    """A testcase of a JUnit file: its outcome and the children that tell its history."""

    outcome: str  # passed | failed | error | skipped
    file: str | None
    line: int | None
    children: tuple[str, ...]


_OUTCOME_OF_CHILD = {"failure": "failed", "error": "error", "skipped": "skipped"}


def read_junit(path: Path) -> list[tuple[JUnitCase, JUnitResult]]:
    """Every testcase of a JUnit file, in file order (duplicates kept, to be seen)."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        children = tuple(child.tag for child in case)
        outcome = next((_OUTCOME_OF_CHILD[t] for t in children if t in _OUTCOME_OF_CHILD), None)
        line = case.get("line")
        result = JUnitResult(
            outcome or "passed", case.get("file"), int(line) if line else None, children
        )
        cases.append(((case.get("classname", ""), case.get("name", "")), result))
    return cases


def junit_by_case(path: Path) -> dict[JUnitCase, JUnitResult]:
    """A JUnit file's testcases by name; fails if a test appears twice."""
    cases = read_junit(path)
    twice = [name for name, count in Counter(name for name, _ in cases).items() if count > 1]
    assert not twice, f"{path.name} names these tests more than once: {twice}"
    return dict(cases)


def outcomes(path: Path) -> dict[JUnitCase, str]:
    return {name: result.outcome for name, result in junit_by_case(path).items()}


def collect(commands: Commands, cwd: Path, env: dict[str, str], *args: str) -> list[str]:
    """The node ids plain `pytest --collect-only -q ARGS` finds."""
    done = commands.run(
        "collect", [*plain_pytest(), "--collect-only", "-q", *args], cwd=cwd, env=env
    )
    assert done.process.returncode == 0, done.output()
    listed = done.stdout.read_text().split("\n\n", 1)[0].splitlines()
    ids = [line for line in listed if "::" in line]
    assert ids, done.output()
    return ids


def junit_cases_of(nodeids: list[str]) -> set[JUnitCase]:
    names = {junit_names(nodeid) for nodeid in nodeids}
    assert len(names) == len(nodeids), "two collected tests share a JUnit name"
    return names


def read_log(path: Path) -> list[list[str]]:
    """The lines a suite's tests left in $SUITE_LOG, split at tabs."""
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def ran_by_worker(log: list[list[str]]) -> dict[str, list[str]]:
    """Node ids each worker ran, in order, from a log of (worker, node id) lines."""
    ran: dict[str, list[str]] = defaultdict(list)
    for worker, nodeid in log:
        ran[worker].append(nodeid)
    return dict(ran)


# --- 1. the demo suite, 3 workers, the same tests and outcomes as plain pytest -----------------


@dataclass(frozen=True)
class PlainRun:
    """What plain pytest makes of a suite: the ids it collects, each test's outcome."""

    collected: list[str]
    outcomes: dict[JUnitCase, str]
    log: list[list[str]] = field(default_factory=list)  # what its tests left in $SUITE_LOG


@pytest.fixture(scope="module")
def plain_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, PlainRun]]:
    """Plain pytest over the demo, without and with DEMO_FAIL=1, both at once (the demo
    mostly sleeps)."""
    tmp = tmp_path_factory.mktemp("plain-demo")
    started = Commands(tmp)
    try:
        collected = collect(started, ROOT, clean_env(tmp), DEMO)
        runs = {
            fail: started.start(
                f"plain-demo-fail-{fail}",
                [*plain_pytest(), "-q", f"--junitxml={tmp / f'plain-{fail}.xml'}", DEMO],
                cwd=ROOT,
                env=clean_env(tmp, **({"DEMO_FAIL": "1"} if fail else {})),
            )
            for fail in (False, True)
        }
        for fail, command in runs.items():
            assert command.wait() == (EXIT_FAILED if fail else EXIT_PASSED), command.output()
        yield {fail: PlainRun(collected, outcomes(tmp / f"plain-{fail}.xml")) for fail in runs}
    finally:
        started.stop()


def run_demo_locally(commands: Commands, tmp: Path, env: dict[str, str], junit: Path) -> int:
    """`ciqueue-gha run --workers 3`: a private Redis, three workers and the summary."""
    argv = [*cli(), "run", "--workers", "3", *REQUEUE, "--junit-xml", str(junit), "--", DEMO]
    command = commands.run("run", argv, cwd=ROOT, env=env)
    return command.process.returncode


def run_demo_as_matrix(
    commands: Commands, tmp: Path, env: dict[str, str], junit: Path, redis_url: str
) -> tuple[int, list[int]]:
    """Three `ciqueue-gha worker` processes and one `ciqueue-gha summary`, one build id."""
    build = ["--redis-url", redis_url, "--build-id", new_build_id("demo")]
    summary = commands.start(
        "summary",
        [*cli(), "summary", *build, "--junit-xml", str(junit), "--inactive-workers-timeout", "30"],
        cwd=ROOT,
        env=env,
    )
    pytest_args = ["--", "pytest", DEMO]
    workers = []
    for index in range(3):
        own = ["--worker-id", f"matrix-{index}", "--junit-xml", str(tmp / f"worker-{index}.xml")]
        argv = [*cli(), "worker", *build, *own, *REQUEUE, *pytest_args]
        workers.append(commands.start(f"worker-{index}", argv, cwd=ROOT, env=env))
    worker_codes = [worker.wait() for worker in workers]
    code = summary.wait()
    assert "Traceback" not in summary.output(), summary.output()
    return code, worker_codes


def run_demo_from_pytest(
    commands: Commands, env: dict[str, str], junit: Path, redis_url: str
) -> tuple[int, list[int]]:
    """Three `pytest --ciqueue` sessions configured by CIQUEUE_* alone, and a summary."""
    build_id = new_build_id("pytest-ciqueue")
    summary_argv = [*cli(), "summary", "--redis-url", redis_url, "--build-id", build_id]
    summary_argv += ["--junit-xml", str(junit), "--inactive-workers-timeout", "30"]
    summary = commands.start("summary", summary_argv, cwd=ROOT, env=env)
    queue_env = dict(
        env,
        CIQUEUE_REDIS_URL=redis_url,
        CIQUEUE_BUILD_ID=build_id,
        CIQUEUE_MAX_REQUEUES=REQUEUE[1],
        CIQUEUE_REQUEUE_TOLERANCE=REQUEUE[3],
    )
    workers = [
        commands.start(
            f"pytest-{index}",
            [*plain_pytest(), "--ciqueue", DEMO],
            cwd=ROOT,
            env=dict(queue_env, CIQUEUE_WORKER_ID=f"pytest-{index}"),
        )
        for index in range(3)
    ]
    worker_codes = [worker.wait() for worker in workers]
    code = summary.wait()
    assert "Traceback" not in summary.output(), summary.output()
    return code, worker_codes


def demo_assert_line() -> int:
    """The 1-based line of the assert that fails under DEMO_FAIL=1."""
    source = (ROOT / DEMO / "test_flaky_and_env.py").read_text().splitlines()
    (line,) = [
        n for n, text in enumerate(source, 1) if 'assert os.environ.get("DEMO_FAIL")' in text
    ]
    return line


@pytest.mark.parametrize("demo_fail", [False, True], ids=["passing", "DEMO_FAIL=1"])
@pytest.mark.parametrize("shape", ["run", "matrix", "pytest --ciqueue"])
def test_demo_over_three_workers_matches_plain_pytest(
    shape: str,
    demo_fail: bool,
    plain_demo: dict[bool, PlainRun],
    commands: Commands,
    tmp_path: Path,
    redis_server: PrivateRedis,
) -> None:
    env = clean_env(tmp_path, **({"DEMO_FAIL": "1"} if demo_fail else {}))
    merged = tmp_path / "merged.xml"
    if shape == "run":
        code = run_demo_locally(commands, tmp_path, env, merged)
    elif shape == "matrix":
        code, worker_codes = run_demo_as_matrix(commands, tmp_path, env, merged, redis_server.url)
        # Only the worker that finalized the failure fails; the one that requeued it does not.
        assert sorted(worker_codes) == ([0, 0, 1] if demo_fail else [0, 0, 0])
    else:
        code, worker_codes = run_demo_from_pytest(commands, env, merged, redis_server.url)
        # pytest's own exit codes: a session that saw a test fail exits 1, even when the
        # failure was requeued; the flaky test's first run always fails.
        assert 1 in worker_codes and set(worker_codes) <= {0, 1}, worker_codes
    output = "\n".join(c.output() for c in commands.started)

    assert code == (EXIT_FAILED if demo_fail else EXIT_PASSED), output
    cases = junit_by_case(merged)
    plain = plain_demo[demo_fail]
    assert set(cases) == junit_cases_of(plain.collected)
    assert {name: result.outcome for name, result in cases.items()} == plain.outcomes

    flaky = cases[junit_names(DEMO_FLAKY)]
    assert flaky.outcome == "passed"
    assert flaky.children.count("flakyFailure") == 1, flaky
    assert f"FLAKY {DEMO_FLAKY}" in output

    failing = cases[junit_names(DEMO_FAILING)]
    if demo_fail:
        assert failing.outcome == "failed"
        assert failing.children.count("rerunFailure") == 1, failing  # requeued, failed again
        assert (failing.file, failing.line) == (f"{DEMO}/test_flaky_and_env.py", demo_assert_line())
        assert f"FAILED {DEMO_FAILING}" in output
    else:
        assert failing.children == ()


# --- 2. fixtures, odd ids, classes, unittest, doctests, every outcome --------------------------


@pytest.fixture(scope="module")
def plain_fixture_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainRun]:
    """Plain pytest over the fixture suite, doctests included."""
    tmp = tmp_path_factory.mktemp("plain-fixtures")
    suite = copy_suite("fixtures", tmp)
    started = Commands(tmp)
    try:
        env = clean_env(tmp, SUITE_LOG=str(tmp / "plain.log"))
        collected = collect(started, suite, env, "--doctest-modules")
        (tmp / "plain.log").unlink(missing_ok=True)
        junit = tmp / "plain.xml"
        argv = [*plain_pytest(), "-q", "--doctest-modules", f"--junitxml={junit}"]
        command = started.run("plain", argv, cwd=suite, env=env)
        assert command.process.returncode == EXIT_FAILED, command.output()
        yield PlainRun(collected, outcomes(junit), read_log(tmp / "plain.log"))
    finally:
        started.stop()


def fixture_events(log: list[list[str]]) -> dict[str, list[tuple[str, ...]]]:
    """The fixture suite's log as each worker's events, in order."""
    events: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for worker, *event in log:
        events[worker].append(tuple(event))
    return dict(events)


def assert_fixtures_paired(events: list[tuple[str, ...]], worker: str) -> None:
    """Each fixture a worker set up is torn down before it is set up again, and by the end;
    the session fixture is set up at most once."""
    live: set[tuple[str, ...]] = set()
    for kind, *detail in events:
        scope, _, step = kind.partition("-")
        fixture = (scope, *detail)
        if step == "setup":
            assert fixture not in live, f"{worker}: {fixture} set up twice without a teardown"
            live.add(fixture)
        elif step == "teardown":
            assert fixture in live, f"{worker}: {fixture} torn down, never set up"
            live.remove(fixture)
    assert not live, f"{worker}: never torn down: {live}"
    assert events.count(("session-setup",)) <= 1, f"{worker}: session fixture set up again"


@pytest.mark.parametrize("unit", ["test", "file"])
def test_fixture_heavy_suite_matches_plain_pytest(
    unit: str, plain_fixture_suite: PlainRun, commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite("fixtures", tmp_path)
    log = tmp_path / "suite.log"
    merged = tmp_path / "merged.xml"
    argv = [*cli(), "run", "--workers", "3", "--unit", unit, "--junit-xml", str(merged)]
    env = clean_env(tmp_path, SUITE_LOG=str(log))
    command = commands.run("run", [*argv, "--", "--doctest-modules"], cwd=suite, env=env)
    assert command.process.returncode == EXIT_FAILED, command.output()
    assert "Traceback" not in command.stderr.read_text()

    cases = outcomes(merged)
    assert set(cases) == junit_cases_of(plain_fixture_suite.collected)
    assert cases == plain_fixture_suite.outcomes
    # The suite does hold every kind of outcome, so the comparison above means something.
    assert set(cases.values()) == {"passed", "failed", "error", "skipped"}

    events = fixture_events(read_log(log))
    assert "plain" not in events
    for worker, worker_events in events.items():
        assert_fixtures_paired(worker_events, worker)
    ran = [
        (worker, event[1]) for worker, evs in events.items() for event in evs if event[0] == "run"
    ]
    # Each test ran once, as under plain pytest (tests whose setup broke early never log).
    plain_ran = [event[1] for _, *event in plain_fixture_suite.log if event[0] == "run"]
    assert Counter(nodeid for _, nodeid in ran) == Counter(plain_ran)
    assert set(plain_fixture_suite.collected) - set(plain_ran) == {
        "check_outcomes.py::test_skip_marker",
        "check_outcomes.py::test_skipif",
        "check_outcomes.py::test_module_fixture_error_a",
        "check_outcomes.py::test_module_fixture_error_b",
    }
    if unit == "file":
        setups = Counter(
            event[1] for evs in events.values() for event in evs if event[0] == "module-setup"
        )
        # A whole file on one worker: each module fixture set up exactly once in the build.
        assert setups == Counter(
            {"check_params": 1, "check_classes": 1, "check_outcomes": 1, "check_doctests": 1}
        )
        workers_of_file: dict[str, set[str]] = defaultdict(set)
        for worker, nodeid in ran:
            workers_of_file[nodeid.split("::")[0]].add(worker)
        assert all(len(workers) == 1 for workers in workers_of_file.values()), workers_of_file


# --- 3. a re-run runs only what failed, and reports the whole suite ----------------------------


def test_attempt_two_runs_only_the_failed_tests_and_reports_the_whole_suite(
    commands: Commands, tmp_path: Path, redis_server: PrivateRedis, client: redis.Redis
) -> None:
    suite = copy_suite("retry", tmp_path)
    build_id = new_build_id("retry")
    failing = "check_retry.py::test_step[2]"

    def attempt(number: int, **env: str) -> Command:
        build = ["--redis-url", redis_server.url, "--build-id", build_id, "--attempt", str(number)]
        outputs = ["--log-dir", str(tmp_path / f"logs-{number}")]
        outputs += ["--junit-xml", str(tmp_path / f"merged-{number}.xml")]
        argv = [*cli(), "run", "--workers", "2", *build, *outputs]
        log = tmp_path / f"ran-{number}.log"
        return commands.run(
            f"attempt-{number}", argv, cwd=suite, env=clean_env(tmp_path, SUITE_LOG=str(log), **env)
        )

    first = attempt(1, FAIL_STEPS="2")
    assert first.process.returncode == EXIT_FAILED, first.output()
    ran_first = [nodeid for _, nodeid in read_log(tmp_path / "ran-1.log")]
    assert sorted(ran_first) == [f"check_retry.py::test_step[{n}]" for n in range(5)]

    second = attempt(2)
    assert second.process.returncode == EXIT_PASSED, second.output()

    # Attempt 2 queued and ran only the failed test: its log, its workers' own JUnit files
    # and its queue in Redis agree.
    assert [nodeid for _, nodeid in read_log(tmp_path / "ran-2.log")] == [failing]
    ran_by_workers = [
        name
        for xml in sorted((tmp_path / "logs-2").glob("worker-*.xml"))
        for name, _ in read_junit(xml)
    ]
    assert ran_by_workers == [junit_names(failing)]
    assert client.lrange(BuildKeys(build_id, 2).key("tests"), 0, -1) == [failing]

    # ... and reported the whole suite, everything passing in the end.
    merged = junit_by_case(tmp_path / "merged-2.xml")
    assert set(merged) == {junit_names(f"check_retry.py::test_step[{n}]") for n in range(5)}
    assert {result.outcome for result in merged.values()} == {"passed"}
    assert merged[junit_names(failing)].children.count("flakyFailure") == 1
    assert "5 tests, 5 passed, 0 failed" in second.stdout.read_text()


# --- 4. --max-failures stops handing out tests ------------------------------------------------


def fails(nodeid: str) -> bool:
    """Whether a test of the max-failures suite fails: the odd ones do."""
    return int(nodeid.rsplit("[", 1)[1].rstrip("]")) % 2 == 1


#: Far longer than the test may take: a summary that waited for inactive workers instead of
#: seeing the build stopped would make the test fail on its time bound.
MATRIX_INACTIVE_TIMEOUT = 120.0


@pytest.mark.parametrize("shape", ["run", "matrix", "pytest --ciqueue"])
def test_max_failures_stops_the_worker_and_the_rest_is_reported_not_run(
    shape: str, commands: Commands, tmp_path: Path, redis_server: PrivateRedis, client: redis.Redis
) -> None:
    suite = copy_suite("maxfail", tmp_path)
    build_id = new_build_id("maxfail")
    log, merged = tmp_path / "ran.log", tmp_path / "merged.xml"
    env = clean_env(tmp_path, SUITE_LOG=str(log))
    build = ["--redis-url", redis_server.url, "--build-id", build_id]
    if shape == "run":
        argv = [*cli(), "run", "--workers", "1", "--max-failures", "1", *build]
        argv += ["--junit-xml", str(merged), "--inactive-workers-timeout", "30"]
        command = commands.run("run", argv, cwd=suite, env=env)
    else:
        worker = [*cli(), "worker", *build, "--worker-id", "only", "--max-failures", "1"]
        worker_command = commands.start("worker", worker, cwd=suite, env=env)
        summary = [*cli(), "summary", *build, "--junit-xml", str(merged)]
        summary += ["--inactive-workers-timeout", str(MATRIX_INACTIVE_TIMEOUT)]
        started = time.monotonic()
        command = commands.run("summary", summary, cwd=suite, env=env)
        assert time.monotonic() - started < MATRIX_INACTIVE_TIMEOUT / 2, command.output()
        assert worker_command.wait() == EXIT_FAILED, worker_command.output()
    stdout = command.stdout.read_text()
    # Stopped by its failure cap: failed, as pytest -x exits, the rest listed as not run.
    assert command.process.returncode == EXIT_FAILED, command.output()

    queue: list[str] = client.lrange(BuildKeys(build_id).key("tests"), 0, -1)  # type: ignore[assignment]
    assert len(queue) == 8
    first_failure = next(i for i, nodeid in enumerate(queue) if fails(nodeid))
    ran = [nodeid for _, nodeid in read_log(log)]
    # The worker runs the queue in order and stops right after the first failure; the test it
    # had reserved behind that one goes back unrun.
    assert ran == queue[: first_failure + 1], (ran, queue)
    assert "stopped by --max-failures" in stdout
    not_run = queue[len(ran) :]
    assert not_run, "the suite is laid out so that some tests never run"

    cases = junit_by_case(merged)
    assert set(cases) == {junit_names(nodeid) for nodeid in queue}
    for nodeid in not_run:
        assert cases[junit_names(nodeid)].outcome == "error"
        assert f"NOT RUN {nodeid}" in stdout
    for nodeid in ran:
        expected = "failed" if fails(nodeid) else "passed"
        assert cases[junit_names(nodeid)].outcome == expected
    assert f"{len(not_run)} NOT RUN" in stdout


# --- 5. durations: the longest tests first on the next build -----------------------------------


def test_durations_file_queues_the_longest_tests_first(
    commands: Commands, tmp_path: Path, redis_server: PrivateRedis, client: redis.Redis
) -> None:
    suite = copy_suite("durations", tmp_path)
    times = tmp_path / "durations.json"
    ids = {s: f"check_durations.py::test_sleep[{s}]" for s in (0.0, 0.15, 0.5, 0.3)}
    longest_first = [ids[s] for s in sorted(ids, reverse=True)]
    env = clean_env(tmp_path)
    run = [*cli(), "run", "--workers", "2", "--durations-file", str(times)]

    # First build: a private Redis of its own, so only the file carries durations forward.
    first = commands.run("first", run, cwd=suite, env=env)
    assert first.process.returncode == EXIT_PASSED, first.output()
    measured = json.loads(times.read_text())
    assert set(measured) == set(ids.values())
    for seconds, nodeid in ids.items():
        assert seconds <= measured[nodeid] < seconds + 1.0, measured
    assert sorted(measured, key=measured.__getitem__, reverse=True) == longest_first

    stored = durations.load_redis(client, durations_namespace())
    assert not set(stored) & set(ids.values()), "the session's Redis must not know them"
    build_id = new_build_id("durations")
    second = commands.run(
        "second",
        [*run, "--redis-url", redis_server.url, "--build-id", build_id],
        cwd=suite,
        env=env,
    )
    assert second.process.returncode == EXIT_PASSED, second.output()
    queued = client.lrange(BuildKeys(build_id).key("tests"), 0, -1)
    assert list(ids.values()) != longest_first  # collection order is not the answer
    assert queued == longest_first


def test_a_test_known_to_run_long_holds_no_test_behind_it(
    commands: Commands, tmp_path: Path, redis_server: PrivateRedis
) -> None:
    """A worker reserves one test ahead, except behind a test the durations say runs long:
    there it reserves as that test's teardown starts, so the second long test goes to the
    worker that comes along meanwhile instead of waiting behind the first. pytest still learns
    the next item in time: each worker sets the module fixture up once and tears it down once."""
    suite = copy_suite("late", tmp_path)
    log, times = tmp_path / "late.log", tmp_path / "durations.json"
    log.touch()
    known = {"check_late.py::test_long_a": 30.0, "check_late.py::test_long_b": 29.0}
    known |= {f"check_late.py::test_short[{n}]": 0.001 for n in range(6)}
    times.write_text(json.dumps(known))
    env = clean_env(tmp_path, SUITE_LOG=str(log))
    build = ["--redis-url", redis_server.url, "--build-id", new_build_id("late")]
    merged = tmp_path / "merged.xml"
    summary = [*cli(), "summary", *build, "--junit-xml", str(merged)]
    summary_command = commands.start("summary", summary, cwd=suite, env=env)
    worker = [*cli(), "worker", *build, "--durations-file", str(times)]
    first = commands.start("first", [*worker, "--worker-id", "first"], cwd=suite, env=env)
    wait_for(lambda: ["first", "start", "long-a"] in read_log(log), "the first worker starts")
    second = commands.start("second", [*worker, "--worker-id", "second"], cwd=suite, env=env)
    for command in (first, second, summary_command):
        assert command.wait() == EXIT_PASSED, command.output()

    lines = read_log(log)
    ran = {name: worker for worker, event, name in lines if event == "start"}
    assert len(ran) == len(known), lines
    assert (ran["long-a"], ran["long-b"]) == ("first", "second"), lines
    for name in ("first", "second"):
        module = [event for worker, event, what in lines if worker == name and what == "module"]
        assert module == ["setup", "teardown"], (name, lines)
    assert set(outcomes(merged).values()) == {"passed"}


# --- 6. --unit file keeps a file's tests on one worker -----------------------------------------


def test_unit_file_keeps_each_file_on_one_worker(commands: Commands, tmp_path: Path) -> None:
    suite = copy_suite("files", tmp_path)
    log, company = tmp_path / "ran.log", tmp_path / "company"
    company.mkdir()
    command = commands.run(
        "run",
        [*cli(), "run", "--workers", "3", "--unit", "file"],
        cwd=suite,
        env=clean_env(tmp_path, SUITE_LOG=str(log), COMPANY_DIR=str(company)),
    )
    assert command.process.returncode == EXIT_PASSED, command.output()

    ran = read_log(log)
    expected = [
        f"check_file_{f}.py::{test}"
        for f in "abcd"
        for test in [
            "test_first",
            *(f"test_more[{n}]" for n in range(3)),
            "TestInClass::test_method",
        ]
    ]
    assert sorted(nodeid for _, nodeid in ran) == sorted(expected)
    workers_of_file: dict[str, set[str]] = defaultdict(set)
    for worker, nodeid in ran:
        workers_of_file[nodeid.split("::")[0]].add(worker)
    assert all(len(workers) == 1 for workers in workers_of_file.values()), workers_of_file
    # More than one worker took part, so keeping files together was not a given.
    assert len(set().union(*workers_of_file.values())) >= 2, workers_of_file
    # And each worker ran a file's tests one after another, never interleaved with another's.
    for worker, nodeids in ran_by_worker(ran).items():
        files = [nodeid.split("::")[0] for nodeid in nodeids]
        assert files == sorted(files, key=files.index), (worker, nodeids)


# --- 7. SIGTERM to `ciqueue-gha run` stops its workers and its Redis --------------------------


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children(parent: int) -> dict[int, str]:
    """The processes whose parent is `parent`, with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found[int(stat.parent.name)] = cmdline.decode(errors="replace")
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > limit:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)


def test_sigterm_stops_the_runs_workers_and_its_redis(commands: Commands, tmp_path: Path) -> None:
    suite = copy_suite("hold", tmp_path)
    held = tmp_path / "held"
    held.mkdir()
    env = clean_env(tmp_path, HOLD_DIR=str(held))
    run = commands.start("run", [*cli(), "run", "--workers", "2"], cwd=suite, env=env)
    started: dict[int, str] = {}
    try:
        wait_for(lambda: len(list(held.glob("*.started"))) == 2, "both workers hold a test")
        started = children(run.process.pid)
        workers = {int(marker.read_text()) for marker in held.glob("*.started")}
        assert workers <= set(started), (workers, started)
        (server,) = [pid for pid, cmdline in started.items() if "redis-server" in cmdline]

        run.process.send_signal(signal.SIGTERM)  # the run alone, as `kill` or `timeout` would
        assert run.wait(timeout=3 * STOP_GRACE) != 0
        assert "Traceback" not in run.output(), run.output()
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers are stopped", 5)
        wait_for(lambda: not alive(server), "the private Redis is stopped", 5)
    finally:
        # Whatever the run left behind (processes it started, found by pid) goes too.
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
