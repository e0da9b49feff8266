"""A broken runner cannot redden the build (issue 13, the circuit breaker), end to end: `worker`
processes, one of them with an environment that makes every test error (suites/broken: as if
its database were gone), and a `summary` beside them, on a real redis-server.

The healthy worker's first test waits until the broken one has failed its streak, so the
broken worker meets its tests however loaded the machine is; and it holds one lease at a time
(its --durations-file says each test takes seconds), so it cannot lease the whole queue
(durations an earlier build recorded would say each takes milliseconds) and leave the broken
worker nothing to fail while its tests wait. Every summary here is given
timeouts of ten minutes: it ends within the test's limit only because the build ended."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.redis_server import PrivateRedis
from ciqueue_gha.report.junit import junit_names
from tests.e2e.test_runner import (
    Command,
    Commands,
    clean_env,
    cli,
    copy_suite,
    new_build_id,
    outcomes,
    read_log,
)
from tests.e2e.test_runner import commands as commands  # the fixture

SUITE = "check_broken.py"
TESTS = [f"{SUITE}::test_fine[{n}]" for n in range(12)] + [f"{SUITE}::test_real"]
ERROR = "connection refused: localhost:5432"

#: The breaker's limit here: a streak of three.
LIMIT = "3"

#: The summary's timeouts: far beyond the test's limit, so only a build that ended ends it.
NEVER = "600"


@dataclass
class Build:
    """One build of suites/broken: its folder, id, Redis and the processes it started."""

    commands: Commands
    tmp: Path
    redis_url: str
    build_id: str
    suite: Path
    log: Path  # what the suite's tests leave ($SUITE_LOG)

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(self.tmp, **{"SUITE_LOG": str(self.log), **extra})

    def flags(self, attempt: int) -> list[str]:
        return [
            "--redis-url",
            self.redis_url,
            "--build-id",
            self.build_id,
            "--attempt",
            str(attempt),
        ]

    def summary(self, *extra: str, attempt: int = 1) -> Command:
        argv = [*cli(), "summary", *self.flags(attempt), "--junit-xml", str(self.tmp / "m.xml")]
        argv += ["--inactive-workers-timeout", NEVER, "--report-timeout", NEVER, *extra]
        env = self.env(GITHUB_STEP_SUMMARY=str(self.tmp / "job-summary.md"))
        return self.commands.start(f"summary-{attempt}", argv, cwd=self.suite, env=env)

    def worker(self, name: str, *extra: str, attempt: int = 1, **env: str) -> Command:
        argv = [*cli(), "worker", *self.flags(attempt), "--worker-id", name, *extra, "--", "-q"]
        started = self.commands.start(
            f"{name}-{attempt}", argv, cwd=self.suite, env=self.env(**env)
        )
        return started

    def slow(self) -> list[str]:
        """The flags of a worker that holds one lease at a time: every test expected slow."""
        path = self.tmp / "slow.json"
        path.write_text(json.dumps(dict.fromkeys(TESTS, 5.0)))
        return ["--durations-file", str(path)]

    def ran_by(self, worker: str) -> list[str]:
        return [nodeid for who, nodeid, _ in read_log(self.log) if who == worker]


@pytest.fixture
def build(commands: Commands, tmp_path: Path, redis_server: PrivateRedis) -> Build:
    suite = copy_suite("broken", tmp_path)
    build_id = new_build_id("breaker")
    return Build(commands, tmp_path, redis_server.url, build_id, suite, tmp_path / "suite-log.txt")


def healthy_and_broken(
    build: Build, *flags: str, attempt: int = 1, **healthy_env: str
) -> tuple[int, str]:
    """A healthy and a broken worker (the broken one's limit through CIQUEUE_*) and the
    summary; both workers end 0 (the broken one's tests went to the healthy one). Returns
    the summary's exit code and output."""
    summary = build.summary(attempt=attempt)
    broken_env = {"SUITE_BROKEN": "1", "CIQUEUE_MAX_CONSECUTIVE_FAILURES": LIMIT}
    broken = build.worker("broken", *flags, attempt=attempt, **broken_env)
    wait = {"SUITE_WAIT_FOR_BROKEN": LIMIT, **healthy_env}
    limit = ["--max-consecutive-failures", LIMIT]
    healthy = build.worker("healthy", *limit, *build.slow(), *flags, attempt=attempt, **wait)
    assert broken.wait() == EXIT_PASSED, broken.output()
    assert "circuit breaker tripped: 3 units failed in a row" in broken.output()
    code = summary.wait()
    healthy.wait()
    assert "Traceback" not in summary.output(), summary.output()
    return code, summary.output()


def test_a_broken_runner_does_not_redden_the_build(build: Build) -> None:
    code, output = healthy_and_broken(build)
    assert code == EXIT_PASSED, output
    assert "13 tests, 13 passed, 0 failed, 0 errors" in output
    (line,) = [line for line in output.splitlines() if line.startswith("STOPPED WORKER")]
    assert line.startswith("STOPPED WORKER broken: 3 units failed in a row")
    assert line.endswith(f"first error: ConnectionRefusedError: {ERROR}")
    assert "TAKEN OVER" not in output  # what it gave back was not lost
    assert sorted(build.ran_by("healthy")) == sorted(TESTS)  # each outcome is the healthy one's
    assert len(build.ran_by("broken")) == 3
    assert set(outcomes(build.tmp / "m.xml").values()) == {"passed"}
    job_summary = (build.tmp / "job-summary.md").read_text()
    assert "✅ passed" in job_summary and "### Stopped workers (circuit breaker) (1)" in job_summary
    assert "<code>broken</code> | 3 |" in job_summary and "localhost:5432" in job_summary


def test_all_workers_broken_ends_the_build_at_once_with_the_failures(build: Build) -> None:
    summary = build.summary()
    workers = [
        build.worker(name, "--max-consecutive-failures", LIMIT, SUITE_BROKEN="1")
        for name in ("broken-1", "broken-2")
    ]
    assert sorted(worker.wait() for worker in workers) == [EXIT_PASSED, EXIT_FAILED]
    assert summary.wait() == EXIT_FAILED  # its timeouts are ten minutes away
    output = summary.output()
    assert "every live worker's circuit breaker tripped" in output
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith(f"ERROR {SUITE}::")]
    not_run = [line for line in lines if line.startswith(f"NOT RUN {SUITE}::")]
    assert len(errors) >= int(LIMIT) and len(errors) + len(not_run) == len(TESTS)
    assert all(line.endswith(f"ConnectionRefusedError: {ERROR}") for line in errors)
    stopped = sorted(line for line in lines if line.startswith("STOPPED WORKER"))
    assert [line.split(":")[0] for line in stopped] == [
        "STOPPED WORKER broken-1",
        "STOPPED WORKER broken-2",
    ]
    assert sum("are its failures (no other live worker)" in line for line in stopped) == 1
    job_summary = (build.tmp / "job-summary.md").read_text()
    assert "### Stopped workers (circuit breaker) (2)" in job_summary


def test_requeue_caps_count_only_a_healthy_workers_failures(build: Build) -> None:
    flags = ("--max-requeues", "2", "--requeue-tolerance", "1")
    code, output = healthy_and_broken(build, *flags, SUITE_REAL_FAILURE="1")
    assert code == EXIT_FAILED, output
    assert "12 passed, 1 failed" in output and f"FAILED {SUITE}::test_real" in output
    client = redis.Redis.from_url(build.redis_url, decode_responses=True)
    requeues = client.hgetall(BuildKeys(build.build_id).key("requeues"))
    assert requeues == {f"{SUITE}::test_real": "2"}  # the streak given back: not charged


def test_max_failures_counts_no_failure_of_a_broken_runner(build: Build) -> None:
    code, output = healthy_and_broken(build, "--max-failures", "4")  # above the streak
    assert code == EXIT_PASSED, output
    assert "13 passed" in output


def test_a_retry_attempt_runs_what_failed_on_a_healthy_worker(build: Build) -> None:
    """Attempt 1: a lone broken worker with the breaker off, every test an error. The retry
    queues them all again, and the broken runner there does not redden it."""
    first = build.summary()
    lone = ["--max-consecutive-failures", "0"]
    own_log = str(build.tmp / "attempt-1-log.txt")
    assert build.worker("lone", *lone, SUITE_BROKEN="1", SUITE_LOG=own_log).wait() == EXIT_FAILED
    assert first.wait() == EXIT_FAILED, first.output()
    code, output = healthy_and_broken(build, attempt=2)
    assert code == EXIT_PASSED, output
    assert "attempt 2: 13 tests, 13 passed, 0 failed" in output
    assert "STOPPED WORKER broken: 3 units failed in a row" in output
    assert set(outcomes(build.tmp / "m.xml")) == {junit_names(test) for test in TESTS}
