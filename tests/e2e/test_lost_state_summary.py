"""Never a false green when Redis loses part of a build (issue 10, findings 1 and 2).

Each structural key of a build is lost after the build and in the middle of it, and the
earlier attempt of a retry is lost before and after the retry populated: the real
`ciqueue-gha summary` (and real `ciqueue-gha worker` processes, where a retry is involved)
must say "queue state lost" in one line and exit 4, or run the whole suite again and say
so; never exit 0 with fewer tests than were queued, never a traceback.

The builds without pytest are driven through the real scripts by a `QueueWorker` in this
process: light, and the summary cannot tell it from a worker.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INFRASTRUCTURE, EXIT_PASSED
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.queue.settings import QueueSettings
from ciqueue_gha.queue.worker import Lease, QueueWorker
from ciqueue_gha.redis_server import PrivateRedis

from .test_runner import SUITES, clean_env, cli, new_build_id

#: Longest one command may take before the test fails instead of hanging.
COMMAND_LIMIT = 90.0

#: Within this many seconds of a key lost mid-build the summary must have exited 4 (it looks
#: every 50 ms; the bound is loose for a loaded machine).
NOTICE_LIMIT = 20.0

RETRY_TESTS = [f"check_retry.py::test_step[{n}]" for n in range(5)]


@dataclass
class Build:
    """One build id on a real Redis, run through the command line."""

    url: str
    build_id: str
    tmp: Path
    suite: Path | None = None
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def keys(self, attempt: int = 1) -> BuildKeys:
        return BuildKeys(self.build_id, attempt)

    def _argv(self, command: str, attempt: int, *extra: str) -> list[str]:
        target = ["--redis-url", self.url, "--build-id", self.build_id, "--attempt", str(attempt)]
        return [*cli(), command, *target, *extra]

    def summary_argv(self, attempt: int, *extra: str) -> list[str]:
        junit = str(self.tmp / f"merged-{attempt}.xml")
        timeouts = ["--inactive-workers-timeout", "60", "--queue-init-timeout", "60"]
        return self._argv("summary", attempt, "--junit-xml", junit, *timeouts, *extra)

    def run(self, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=self.suite or self.tmp,
            env=clean_env(self.tmp, **env),
            timeout=COMMAND_LIMIT,
        )

    def summary(self, attempt: int = 1, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.summary_argv(attempt, *extra))

    def start(self, argv: list[str], **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.suite or self.tmp,
            env=clean_env(self.tmp, **env),
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def workers(self, attempt: int, count: int = 2, **env: str) -> list[tuple[int, str]]:
        """`count` real `ciqueue-gha worker` processes over the suite: exit code, output each."""
        processes = [
            self.start(self._argv("worker", attempt, "--worker-id", f"w{n}", "--", "-q"), **env)
            for n in range(count)
        ]
        done = []
        for process in processes:
            out, err = process.communicate(timeout=COMMAND_LIMIT)
            done.append((process.returncode, out + err))
        return done

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture
def build(redis_server: PrivateRedis, tmp_path: Path) -> Iterator[Build]:
    started = Build(redis_server.url, new_build_id("lost"), tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def retry_build(build: Build, tmp_path: Path) -> Build:
    """A build of the five-step retry suite; FAIL_STEPS=2 makes step 2 fail."""
    build.suite = Path(shutil.copytree(SUITES / "retry", tmp_path / "retry"))
    return build


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def assert_state_lost(done: subprocess.CompletedProcess[str]) -> None:
    """Exit 4, one line saying the state is lost, no report of a build, no traceback."""
    assert done.returncode == EXIT_INFRASTRUCTURE, output(done)
    assert "Traceback" not in done.stdout + done.stderr, output(done)
    errors = [line for line in done.stderr.splitlines() if "WARNING" not in line]
    assert len(errors) == 1 and "queue state lost" in errors[0], output(done)
    assert " tests, " not in done.stdout, output(done)  # no headline claiming a count


def headline(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stdout.splitlines() if " tests, " in line]
    assert len(lines) == 1, output(done)
    return lines[0]


# --- builds driven through the scripts --------------------------------------------------------

TESTS = [f"t{n}" for n in range(8)]


def driver(client: redis.Redis, build: Build, name: str = "driver") -> QueueWorker:
    return QueueWorker(client, build.keys(), name, QueueSettings(lease_timeout=120.0))


def passed(lease: Lease, outcome: str = "passed") -> AttemptRecord:
    return AttemptRecord(lease.unit, outcome, cases=[CaseRecord(lease.unit, outcome)])


def drive(worker: QueueWorker, count: int) -> list[Lease]:
    """Run `count` tests to completion (the second one fails); returns their leases."""
    leases = []
    for _ in range(count):
        lease = worker.reserve()
        assert isinstance(lease, Lease)
        outcome = "failed" if len(leases) == 1 else "passed"
        worker.acknowledge(lease, passed(lease, outcome), reserve_next=False)
        leases.append(lease)
    return leases


def requeue_one(client: redis.Redis, build: Build) -> None:
    """A test fails once and goes back to the queue (`drive` runs it again)."""
    settings = QueueSettings(lease_timeout=120.0, max_requeues=1, requeue_tolerance=1.0)
    worker = QueueWorker(client, build.keys(), "requeuing", settings)
    worker.populate(TESTS)  # populated already: it learns the total (the build's requeue cap)
    lease = worker.reserve()
    assert isinstance(lease, Lease)
    assert worker.requeue(lease, passed(lease, "failed"), reserve_next=False)[0] == "requeued"


def populated(client: redis.Redis, build: Build) -> QueueWorker:
    """The build's queue, populated through the command line as a non-pytest script would."""
    tests = build.tmp / "tests.txt"
    tests.write_text("\n".join(TESTS) + "\n")
    argv = [*cli(), "queue", "populate", "--redis-url", build.url, "--build-id", build.build_id]
    done = build.run([*argv, "--tests-file", str(tests)])
    assert done.returncode == 0, output(done)
    return driver(client, build)


#: Keys every populated build has once its tests ran; any one lost must read as state lost
#: (dispositions: a build with a requeued attempt; a final attempt has none).
AFTER_THE_BUILD = ["tests", "total", "results", "attempts", "dispositions", "ready"]
AFTER_THE_BUILD += ["leader", "digest", "basis", "collected"]


@pytest.mark.parametrize("lost", AFTER_THE_BUILD)
def test_a_key_lost_after_the_build_is_exit_4_in_one_line(
    lost: str, build: Build, client: redis.Redis
) -> None:
    worker = populated(client, build)
    if lost == "dispositions":
        requeue_one(client, build)
    drive(worker, len(TESTS))
    whole = build.summary()
    assert whole.returncode == EXIT_FAILED, output(whole)
    assert headline(whole).startswith(f"ciqueue-gha: build {build.build_id} attempt 1: 8 tests")

    client.delete(build.keys().key(lost))
    started = time.monotonic()
    assert_state_lost(build.summary())
    # At once: not after --queue-init-timeout (60 s here), even with the ready marker gone.
    assert time.monotonic() - started < NOTICE_LIMIT


def test_one_result_whose_attempt_is_gone_is_exit_4(build: Build, client: redis.Redis) -> None:
    worker = populated(client, build)
    leases = drive(worker, len(TESTS))
    client.hdel(build.keys().key("attempts"), str(leases[3].id))
    assert_state_lost(build.summary())


def test_a_shortened_tests_list_is_exit_4(build: Build, client: redis.Redis) -> None:
    """Part of a list lost (the list rewritten shorter) is as lost as the whole list."""
    worker = populated(client, build)
    drive(worker, len(TESTS))
    client.ltrim(build.keys().key("tests"), 0, 3)
    assert_state_lost(build.summary())


#: Keys whose loss in the middle of a build the summary must notice while it waits.
MID_BUILD = ["tests", "total", "results", "attempts", "leases", "ready", "leader", "basis"]


@pytest.mark.slow
@pytest.mark.parametrize("lost", MID_BUILD)
def test_a_key_lost_mid_build_is_exit_4_at_once(
    lost: str, build: Build, client: redis.Redis
) -> None:
    worker = populated(client, build)
    drive(worker, 3)
    running = worker.reserve()  # held under a live lease: the summary waits for it
    assert isinstance(running, Lease)
    summary = build.start(build.summary_argv(1))
    time.sleep(2.0)  # the summary is waiting, well past its first looks
    assert summary.poll() is None, summary.communicate()
    client.delete(build.keys().key(lost))
    started = time.monotonic()
    out, err = summary.communicate(timeout=COMMAND_LIMIT)
    assert time.monotonic() - started < NOTICE_LIMIT
    assert_state_lost(subprocess.CompletedProcess(summary.args, summary.returncode, out, err))


# --- the earlier attempt of a retry lost, through real workers --------------------------------


def failed_attempt_one(build: Build) -> None:
    """Attempt 1 of the retry suite, step 2 failing: two workers and the summary."""
    workers = build.workers(1, FAIL_STEPS="2")
    assert sorted(code for code, _ in workers) == [EXIT_PASSED, EXIT_FAILED], workers
    first = build.summary(1)
    assert first.returncode == EXIT_FAILED, output(first)
    assert "5 tests, 4 passed, 1 failed" in headline(first)


def attempt_one_keys(client: redis.Redis, build: Build) -> list[str]:
    return list(client.scan_iter(match=build.keys(1).prefix + "*"))


@pytest.mark.slow
def test_tests_list_of_a_failed_attempt_lost_before_the_retry_runs_the_whole_suite(
    retry_build: Build, client: redis.Redis
) -> None:
    build = retry_build
    failed_attempt_one(build)
    client.delete(build.keys(1).key("tests"), build.keys(1).key("verdict"))

    workers = build.workers(2)
    assert [code for code, _ in workers] == [EXIT_PASSED, EXIT_PASSED], workers
    said = [line for _, out in workers for line in out.splitlines() if "whole suite" in line]
    assert said and all("attempt 2 queues the whole suite" in line for line in said), workers
    assert "Traceback" not in "".join(out for _, out in workers)
    assert client.llen(build.keys(2).key("tests")) == len(RETRY_TESTS)

    second = build.summary(2)
    assert second.returncode == EXIT_PASSED, output(second)
    assert "5 tests, 5 passed, 0 failed" in headline(second)
    assert "attempt 2 ran the whole suite" in second.stdout


@pytest.mark.slow
def test_failed_attempt_lost_before_the_retry_but_its_verdict_kept_reruns_the_failure_only(
    retry_build: Build, client: redis.Redis
) -> None:
    """The verdict outlives the build's keys (30 days against 3): the retry runs what failed,
    and its summary counts the rest from the verdict, never fewer than the suite."""
    build = retry_build
    failed_attempt_one(build)
    kept = build.keys(1).key("verdict")
    client.delete(*(key for key in attempt_one_keys(client, build) if key != kept))

    workers = build.workers(2)
    assert sorted(code for code, _ in workers) == [EXIT_PASSED, EXIT_PASSED], workers
    assert client.lrange(build.keys(2).key("tests"), 0, -1) == ["check_retry.py::test_step[2]"]

    second = build.summary(2)
    assert second.returncode == EXIT_PASSED, output(second)
    assert "1 tests, 1 passed, 0 failed" in headline(second)
    assert (
        "plus 4 tests done for good by attempt 1, whose records expired, counted from its "
        "verdict (4 passed): 5 units in the suite" in second.stdout
    ), output(second)


@pytest.mark.slow
@pytest.mark.parametrize("verdict_kept", [False, True])
def test_earlier_attempt_lost_after_the_retry_populated(
    verdict_kept: bool, retry_build: Build, client: redis.Redis
) -> None:
    """Attempt 1's keys vanish after attempt 2 ran: its summary never reports attempt 2's
    one test as the build. Without attempt 1's verdict that is state lost."""
    build = retry_build
    failed_attempt_one(build)
    workers = build.workers(2)
    assert sorted(code for code, _ in workers) == [EXIT_PASSED, EXIT_PASSED], workers
    kept = build.keys(1).key("verdict") if verdict_kept else None
    client.delete(*(key for key in attempt_one_keys(client, build) if key != kept))

    second = build.summary(2)
    if not verdict_kept:
        assert_state_lost(second)
        assert "attempt 1" in second.stderr
        return
    assert second.returncode == EXIT_PASSED, output(second)
    assert "5 units in the suite" in second.stdout, output(second)


def test_no_state_at_all_is_not_reported_as_a_build(build: Build) -> None:
    """A build nothing was ever queued for: exit 4 after the queue-init timeout, one line."""
    done = build.summary(1, "--queue-init-timeout", "1")
    assert done.returncode == EXIT_INFRASTRUCTURE, output(done)
    assert "Traceback" not in done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, output(done)
