"""Faults in the middle of a build, through the real CLI: `ciqueue-gha worker` processes (each
in a process group of its own, with its heartbeat helper) and `ciqueue-gha summary`, on a
real redis-server of the test's own.

A worker stopped past its lease (taken over, or not), a worker killed, every worker killed,
Redis restarted empty and Redis restarted with its data: in each, every test of the suite is
accounted for exactly once in the merged JUnit file, and every process ends with a documented
exit code and no traceback.

The suites live in fault_suites/ (files check_*.py, never collected by the project's own
run). Their tests leave marker files (see fault_suites/faultlib.py), so the driving test waits
on events, not on sleeps, and knows which worker ran what.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.errors import EXIT_INCOMPLETE, EXIT_INFRASTRUCTURE, EXIT_PASSED
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import BuildRecord
from ciqueue_gha.queue.supervisor import Supervisor
from tests.support.redis_server import ControlledRedis

SUITES = Path(__file__).resolve().parent / "fault_suites"

#: Short leases, so a takeover happens within seconds; heartbeats go every lease / 5.
LEASE_TIMEOUT = 2.0

#: Longest any one wait of a test may take before it fails instead of hanging.
WAIT_LIMIT = 40.0

TAKEOVER_TESTS = ["test_hold", *(f"test_quick[{n}]" for n in range(4))]
STUCK_TESTS = [f"test_stuck[{n}]" for n in range(6)]

_builds = itertools.count(1)


def cli() -> list[str]:
    """The installed `ciqueue-gha` entry point, as a user runs it."""
    script = Path(sys.executable).with_name("ciqueue-gha")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ciqueue_gha.cli"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_LIMIT) -> None:
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > limit:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


@dataclass
class Build:
    """One build of a fault suite: a copy of the suite, its Redis, the processes it started.

    Every process runs in a session (so a process group) of its own, with its output in
    files next to the suite; `cleanup` kills the groups of those still unreaped.
    """

    folder: Path
    redis_url: str
    build_id: str = field(default_factory=lambda: f"faults-{next(_builds)}")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def marks(self) -> Path:
        return self.folder / "marks"

    @property
    def junit(self) -> Path:
        return self.folder / "merged.xml"

    @property
    def keys(self) -> BuildKeys:
        return BuildKeys(self.build_id)

    def _env(self, block: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
        env.update(CIQUEUE_REDIS_URL=self.redis_url, FAULT_DIR=str(self.marks), FAULT_BLOCK=block)
        return env

    def _start(self, name: str, argv: list[str], block: str = "") -> subprocess.Popen[bytes]:
        with (
            (self.folder / f"{name}.out").open("wb") as out,
            (self.folder / f"{name}.err").open("wb") as err,
        ):
            process = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=self._env(block),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def worker(
        self,
        worker_id: str,
        suite: str = "check_takeover.py",
        *,
        block: str = "",
        lease_timeout: float = LEASE_TIMEOUT,
    ) -> subprocess.Popen[bytes]:
        """Start `ciqueue-gha worker`; its held tests block while `block` names it."""
        argv = [
            *cli(), "worker",
            "--worker-id", worker_id,
            "--build-id", self.build_id,
            "--lease-timeout", str(lease_timeout),
            "--queue-init-timeout", "30",
            "--", "pytest", "-q", suite,
        ]  # fmt: skip
        return self._start(worker_id, argv, block)

    def summary(self, inactive_workers_timeout: float = 30.0) -> subprocess.Popen[bytes]:
        argv = [
            *cli(), "summary",
            "--build-id", self.build_id,
            "--junit-xml", str(self.junit),
            "--report-timeout", "60",
            "--inactive-workers-timeout", str(inactive_workers_timeout),
            "--queue-init-timeout", "30",
        ]  # fmt: skip
        return self._start("summary", argv)

    def stdout(self, name: str) -> str:
        return (self.folder / f"{name}.out").read_text(errors="replace")

    def stderr(self, name: str) -> str:
        return (self.folder / f"{name}.err").read_text(errors="replace")

    def finish(self, name: str, timeout: float = WAIT_LIMIT) -> int:
        """Wait for process `name` to exit; its exit code. Fails, with its output, on timeout."""
        try:
            return self.processes[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running after {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} stdout ---\n{self.stdout(name)}\n"
            f"--- {name} stderr ---\n{self.stderr(name)}"
            for name in self.processes
        )

    def marked(self, event: str, test: str, worker: str) -> bool:
        return (self.marks / f"{event}.{test}.{worker}").exists()

    def wait_started(self, test: str, worker: str) -> None:
        wait_until(lambda: self.marked("started", test, worker), f"{worker} runs {test}")

    def wait_quick_tests_ran(self, worker: str) -> None:
        """Until `worker` ran the quick tests of check_takeover.py, but the one the holding
        worker reserved behind its held test."""
        wait_until(
            lambda: len(list(self.marks.glob(f"ran.quick*.{worker}"))) >= 3,
            f"{worker} ran the quick tests",
        )

    def release(self, test: str, worker: str) -> None:
        (self.marks / f"release.{test}.{worker}").touch()

    def signal(self, name: str, signum: signal.Signals) -> None:
        """Send `signum` to the process group of `name` (the worker and its heartbeat helper)."""
        os.killpg(self.processes[name].pid, signum)

    def record(self) -> BuildRecord:
        client = connect(self.redis_url)
        try:
            return BuildRecord.load(client, self.keys)
        finally:
            client.close()

    def assert_no_traceback(self) -> None:
        """No process crashed: stderr (and the summary's report) hold no Python traceback.
        A worker's stdout is pytest's own report, where a failing test's traceback belongs."""
        for name in self.processes:
            assert "Traceback" not in self.stderr(name), f"{name}:\n{self.stderr(name)}"
        assert "Traceback" not in self.stdout("summary"), self.stdout("summary")

    def cleanup(self) -> None:
        for process in self.processes.values():
            # Unreaped, so its pid (and group id) cannot belong to anyone else yet.
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def server() -> Iterator[ControlledRedis]:
    """A redis-server of this test's own, which it may kill or restart; append-only, so a
    restart can bring the data back."""
    with ControlledRedis(appendonly=True) as private:
        yield private


@pytest.fixture
def build(server: ControlledRedis, tmp_path: Path) -> Iterator[Build]:
    folder = tmp_path / "suite"
    shutil.copytree(SUITES, folder)
    (folder / "marks").mkdir()
    started = Build(folder, server.url)
    try:
        yield started
    finally:
        started.cleanup()


def junit_cases(path: Path) -> dict[str, list[ET.Element]]:
    """The merged JUnit's testcases by name (several under one name would be a bug)."""
    cases: dict[str, list[ET.Element]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases.setdefault(case.get("name", ""), []).append(case)
    return cases


def assert_each_once(cases: dict[str, list[ET.Element]], names: list[str]) -> None:
    assert sorted(cases) == sorted(names)
    assert {name: len(found) for name, found in cases.items()} == dict.fromkeys(names, 1)


def results_of(case: ET.Element) -> list[str]:
    return [child.tag for child in case if child.tag in ("failure", "error", "skipped")]


def workers_of(record: BuildRecord, test: str) -> list[str]:
    """Who ran `test`: the worker of each of its recorded attempts, oldest first."""
    return [attempt.record.worker for attempt in record.attempts.get(test, [])]


def nodeid(suite: str, name: str) -> str:
    return f"{suite}::{name}"


# --- the scenarios --------------------------------------------------------------------------


def test_stopped_worker_is_taken_over_and_its_late_result_kept_as_stale(build: Build) -> None:
    hold = nodeid("check_takeover.py", "test_hold")
    build.worker("A", block="A,B")
    build.wait_started("hold", "A")
    build.signal("A", signal.SIGSTOP)  # the worker and its heartbeat helper: the lease runs out
    build.summary()
    build.worker("B", block="A,B")
    build.wait_started("hold", "B")  # B took the test over and runs it: A's lease had expired
    assert build.processes["A"].poll() is None  # still there, stopped
    assert not build.marked("ran", "hold", "A")

    build.signal("A", signal.SIGCONT)
    build.release("hold", "A")
    # A finishes late: its result is recorded, as a stale attempt, while B still runs the test.
    wait_until(lambda: "A" in workers_of(build.record(), hold), "A's late result is recorded")
    record = build.record()
    assert [(a.record.worker, a.disposition) for a in record.attempts[hold]] == [("A", "stale")]
    assert hold not in record.results
    time.sleep(1.0)  # five supervisor polls: it must not call the build done
    assert build.processes["summary"].poll() is None, build.logs()

    build.release("hold", "B")
    assert build.finish("summary") == EXIT_PASSED, build.logs()
    assert build.finish("A") == EXIT_PASSED, build.logs()
    assert build.finish("B") == EXIT_PASSED, build.logs()

    record = build.record()
    assert record.results[hold].worker == "B"
    attempts = [(a.record.worker, a.disposition) for a in record.attempts[hold]]
    assert attempts == [("A", "stale"), ("B", "final")]
    assert record.takeovers[hold] >= 1
    cases = junit_cases(build.junit)
    assert_each_once(cases, TAKEOVER_TESTS)
    assert all(results_of(case[0]) == [] for case in cases.values())
    assert f"TAKEN OVER {hold}" in build.stdout("summary")
    build.assert_no_traceback()


def test_stopped_worker_resumed_before_anyone_took_over_runs_each_test_once(
    build: Build,
) -> None:
    """Alone, a worker stopped past its leases (the running one and the window held behind
    it) resumes and runs each test once: the tests it held are finalized by it, once, whether
    under the old leases (nobody took them over) or under new ones it reserved again."""
    build.worker("A", block="A")
    build.wait_started("hold", "A")
    build.signal("A", signal.SIGSTOP)
    build.summary()
    client = connect(build.redis_url)
    try:
        status = Supervisor(client, build.keys).status
        wait_until(lambda: status().alive_leases == 0 < status().running, "A's leases expire")
    finally:
        client.close()
    build.signal("A", signal.SIGCONT)
    build.release("hold", "A")

    assert build.finish("summary") == EXIT_PASSED, build.logs()
    assert build.finish("A") == EXIT_PASSED, build.logs()
    runs = Counter(p.name.split(".")[1] for p in build.marks.glob("ran.*"))
    assert runs == Counter(["hold", *(f"quick{n}" for n in range(4))])
    record = build.record()
    for n in range(4):
        quick = nodeid("check_takeover.py", f"test_quick[{n}]")
        assert [(a.record.worker, a.disposition) for a in record.attempts[quick]] == [
            ("A", "final")
        ]
        assert record.takeovers.get(quick, 0) <= 1  # at most A taking its own lease back
    cases = junit_cases(build.junit)
    assert_each_once(cases, TAKEOVER_TESTS)
    assert all(results_of(case[0]) == [] for case in cases.values())
    build.assert_no_traceback()


def test_killed_worker_test_is_run_by_another(build: Build) -> None:
    hold = nodeid("check_takeover.py", "test_hold")
    build.summary()
    build.worker("A", block="A")
    build.wait_started("hold", "A")
    build.worker("B", block="A")
    build.signal("A", signal.SIGKILL)  # the worker and its heartbeat helper, mid-test
    assert build.finish("A") == -signal.SIGKILL

    assert build.finish("summary") == EXIT_PASSED, build.logs()
    assert build.finish("B") == EXIT_PASSED, build.logs()
    assert build.marked("ran", "hold", "B")
    assert not build.marked("ran", "hold", "A")
    record = build.record()
    assert record.results[hold].worker == "B"
    assert workers_of(record, hold) == ["B"]  # A was killed before it could report
    cases = junit_cases(build.junit)
    assert_each_once(cases, TAKEOVER_TESTS)
    assert results_of(cases["test_hold"][0]) == []
    build.assert_no_traceback()


def test_all_workers_killed_summary_gives_up_and_names_what_did_not_run(build: Build) -> None:
    build.worker("A", "check_stuck.py", block="*")
    build.worker("B", "check_stuck.py", block="*")
    build.summary(inactive_workers_timeout=3)

    def both_running() -> bool:
        return {p.name.rsplit(".", 1)[1] for p in build.marks.glob("started.*")} == {"A", "B"}

    wait_until(both_running, "both workers run a test")
    for worker in ("A", "B"):
        build.signal(worker, signal.SIGKILL)
    killed = time.monotonic()

    assert build.finish("summary") == EXIT_INCOMPLETE, build.logs()
    waited = time.monotonic() - killed
    # Leases expire after 2 s; the summary then waits out 3 s since a worker was last seen
    # (its last heartbeat, up to one interval before the kill).
    assert 3.0 - LEASE_TIMEOUT / 5 - 0.1 <= waited < 15, waited
    out = build.stdout("summary")
    assert "gave up waiting (no live worker)" in out
    for name in STUCK_TESTS:
        assert f"NOT RUN {nodeid('check_stuck.py', name)}" in out.splitlines(), out
    cases = junit_cases(build.junit)
    assert_each_once(cases, STUCK_TESTS)
    for name in STUCK_TESTS:
        error = cases[name][0].find("error")
        assert results_of(cases[name][0]) == ["error"], name
        assert error is not None and "not run" in error.get("message", ""), name
    root = ET.parse(build.junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None and suite.get("errors") == str(len(STUCK_TESTS))
    build.assert_no_traceback()


def server_info(server: ControlledRedis) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    try:
        return {**client.info("server"), **client.info("memory")}
    finally:
        client.close()


def one_line_error(text: str) -> str:
    errors = [line for line in text.splitlines() if line.startswith("ciqueue-gha: error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_redis_restarted_empty_is_queue_state_lost(build: Build, server: ControlledRedis) -> None:
    build.summary()
    build.worker("A", block="A", lease_timeout=5)
    build.wait_started("hold", "A")
    build.worker("B", block="A", lease_timeout=5)
    # B runs the quick tests, then waits on A's held test.
    build.wait_quick_tests_ran("B")

    server.restart(empty=True)
    build.release("hold", "A")

    assert build.finish("summary") == EXIT_INFRASTRUCTURE, build.logs()
    assert "queue state lost" in one_line_error(build.stderr("summary"))
    for worker in ("A", "B"):
        assert build.finish(worker) == EXIT_INFRASTRUCTURE, build.logs()
        assert "queue state lost" in one_line_error(build.stderr(worker)), build.logs()
    assert not build.junit.exists() or junit_cases(build.junit) == {}
    build.assert_no_traceback()


def test_redis_restarted_with_its_data_the_build_completes(
    build: Build, server: ControlledRedis
) -> None:
    build.summary()
    build.worker("A", block="A", lease_timeout=5)
    build.wait_started("hold", "A")
    build.worker("B", block="A", lease_timeout=5)
    build.wait_quick_tests_ran("B")

    run_before = server_info(server)["run_id"]
    server.restart(empty=False)
    build.release("hold", "A")

    assert build.finish("summary") == EXIT_PASSED, build.logs()
    for worker in ("A", "B"):
        assert build.finish(worker) == EXIT_PASSED, build.logs()
    after = server_info(server)
    assert after["run_id"] != run_before  # a new server process, from the append-only file
    assert after["number_of_cached_scripts"] > 0  # loaded again after NOSCRIPT
    record = build.record()
    assert sorted(record.results) == sorted(nodeid("check_takeover.py", t) for t in TAKEOVER_TESTS)
    assert record.results[nodeid("check_takeover.py", "test_hold")].worker == "A"
    runs = Counter(p.name.split(".")[1] for p in build.marks.glob("ran.*"))
    assert runs == Counter(["hold", *(f"quick{n}" for n in range(4))])
    cases = junit_cases(build.junit)
    assert_each_once(cases, TAKEOVER_TESTS)
    assert all(results_of(case[0]) == [] for case in cases.values())
    build.assert_no_traceback()
