"""GitHub re-runs only the summary job (issue 10, finding 4): attempt N+1 with no worker.

The summary of an attempt nothing was queued for reports the latest attempt that left state
(or a verdict), with every test of the suite: after a green attempt at once, not after
--queue-init-timeout (5 minutes by default); after a red one only once the queue-init timeout
passed with no worker of the retry (GitHub's "re-run failed jobs" starts the summary beside
the retry's workers, and it must report the retry, not the attempt before). Attempt 1 is
run as in a workflow: two real `ciqueue-gha worker` processes and the summary.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED, EXIT_USAGE

from .test_lost_state_summary import (
    SUITES,
    Build,
    attempt_one_keys,
    build,
    failed_attempt_one,
    headline,
    output,
    retry_build,
)

#: The queue-init timeout of a summary re-run after a red attempt, seconds.
WAIT = "4"

#: "At once": the default --queue-init-timeout is 300 s; this bound leaves a loaded machine room.
AT_ONCE = 20.0

pytestmark = pytest.mark.slow

__all__ = ["build", "retry_build"]  # the fixtures, shared with the lost-state tests


def green_attempt_one(build: Build) -> None:
    workers = build.workers(1)
    assert [code for code, _ in workers] == [EXIT_PASSED, EXIT_PASSED], workers
    first = build.summary(1)
    assert first.returncode == EXIT_PASSED, output(first)


def summary_alone(
    build: Build, attempt: int, queue_init_timeout: str | None = None
) -> tuple[int, str, float]:
    """`ciqueue-gha summary --attempt N`, timed: with the default queue-init timeout (300 s,
    which the summary must not wait out) unless `queue_init_timeout` is given."""
    started = time.monotonic()
    argv = [*build.summary_argv(attempt)]
    at = argv.index("--queue-init-timeout")
    del argv[at : at + 2]
    if queue_init_timeout is not None:
        argv += ["--queue-init-timeout", queue_init_timeout]
    done = build.run(argv)
    # A Python traceback of ours (a collection error's report holds pytest's "Traceback:").
    assert "Traceback (most recent call last)" not in done.stdout + done.stderr, output(done)
    return done.returncode, done.stdout, time.monotonic() - started


def test_summary_alone_after_a_green_attempt_reports_it_at_once(retry_build: Build) -> None:
    build = retry_build
    green_attempt_one(build)
    code, stdout, took = summary_alone(build, 2)
    assert code == EXIT_PASSED, stdout
    assert took < AT_ONCE
    assert "nothing was queued for attempt 2" in stdout
    assert "reporting attempt 1, the latest attempt with state" in stdout
    assert "attempt 1: 5 tests, 5 passed, 0 failed" in stdout


def test_summary_alone_after_a_failed_attempt_reports_the_failure_when_no_retry_came(
    retry_build: Build,
) -> None:
    build = retry_build
    failed_attempt_one(build)
    code, stdout, took = summary_alone(build, 2, queue_init_timeout=WAIT)
    assert code == EXIT_FAILED, stdout
    assert float(WAIT) <= took < float(WAIT) + AT_ONCE  # waited for a retry's workers first
    assert "reporting attempt 1, the latest attempt with state" in stdout
    assert "attempt 1: 5 tests, 4 passed, 1 failed" in stdout
    assert "FAILED check_retry.py::test_step[2]" in stdout


def test_re_run_failed_jobs_the_summary_started_first_reports_the_retry(
    retry_build: Build,
) -> None:
    """ "Re-run failed jobs" after a red attempt 1 re-runs the summary and the failed workers
    together; the summary gets to Redis first. It waits for the retry (default queue-init
    timeout) and reports attempt 2, green, not attempt 1 again."""
    build = retry_build
    failed_attempt_one(build)
    argv = build.summary_argv(2)
    at = argv.index("--queue-init-timeout")
    del argv[at : at + 2]
    summary = build.start(argv)
    time.sleep(2)  # the summary is waiting: the retry's runners come later
    assert summary.poll() is None
    workers = build.workers(2)
    assert [code for code, _ in workers] == [EXIT_PASSED, EXIT_PASSED], workers
    stdout, stderr = summary.communicate(timeout=AT_ONCE * 3)
    assert summary.returncode == EXIT_PASSED, stdout + stderr
    assert "reporting attempt 1" not in stdout
    assert "attempt 2: 5 tests, 5 passed, 0 failed" in stdout


def test_a_retry_after_a_summary_alone_builds_on_the_attempt_that_ran(
    retry_build: Build, client: redis.Redis
) -> None:
    """Attempt 2 re-ran the summary alone; attempt 3 re-runs the failed jobs: it queues what
    failed in attempt 1 (attempt 2 queued nothing) and reports the whole suite."""
    build = retry_build
    failed_attempt_one(build)
    code, _, _ = summary_alone(build, 2, queue_init_timeout=WAIT)
    assert code == EXIT_FAILED

    workers = build.workers(3)
    assert [code for code, _ in workers] == [EXIT_PASSED, EXIT_PASSED], workers
    assert client.lrange(build.keys(3).key("tests"), 0, -1) == ["check_retry.py::test_step[2]"]
    third = build.summary(3)
    assert third.returncode == EXIT_PASSED, output(third)
    assert "attempt 3: 5 tests, 5 passed, 0 failed" in headline(third)


def test_summary_alone_after_the_records_expired_reports_the_verdict(
    retry_build: Build, client: redis.Redis
) -> None:
    """Day 10: the build's keys expired (3 days), its verdict did not (30): the summary of a
    re-run reports the suite from the verdict, with the exit code attempt 1 had."""
    build = retry_build
    failed_attempt_one(build)
    kept = build.keys(1).key("verdict")
    client.delete(*(key for key in attempt_one_keys(client, build) if key != kept))

    code, stdout, took = summary_alone(build, 2, queue_init_timeout=WAIT)
    assert code == EXIT_FAILED, stdout
    assert took < float(WAIT) + AT_ONCE
    assert (
        f"build {build.build_id} attempt 1 (its records expired; from its verdict): 5 units, "
        "4 tests done (4 passed), 1 units failed or did not finish" in stdout
    )
    assert "FAILED OR NOT RUN check_retry.py::test_step[2]" in stdout


def test_summary_alone_after_collection_errors_stopped_attempt_one(build: Build) -> None:
    """Attempt 1 queued nothing (a file failed to import, as plain pytest stops there, exit
    2): a re-run of the summary alone reports that, once no retry's worker came."""
    build.suite = Path(shutil.copytree(SUITES / "collection", build.tmp / "collection"))
    workers = build.workers(1)
    assert all(code == EXIT_USAGE for code, _ in workers), workers
    first = build.summary(1)
    assert first.returncode == EXIT_USAGE, output(first)

    code, stdout, took = summary_alone(build, 2, queue_init_timeout=WAIT)
    assert code == EXIT_USAGE, stdout
    assert took < float(WAIT) + AT_ONCE
    assert "reporting attempt 1, the latest attempt with state" in stdout
    assert "check_broken_import.py" in stdout
