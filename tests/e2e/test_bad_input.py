"""Bad input to the pytest runner, end to end: each a clear message and a documented exit
code (DESIGN.md §1), never a traceback, and no test silently lost.

The suites live in suites/empty and suites/bad_input (files check_*.py, never collected by
the project's own run) and run from a copy of their folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_USAGE
from ciqueue_gha.redis_server import PrivateRedis
from ciqueue_gha.report.junit import junit_names
from tests.e2e.test_runner import (
    Commands,
    clean_env,
    cli,
    copy_suite,
    junit_by_case,
    new_build_id,
)

SUITE = "check_bad.py"


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    started = Commands(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ciqueue-gha: error:")]


def assert_no_traceback(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output, output


def run_locally(
    commands: Commands, tmp_path: Path, suite: Path, *pytest_args: str
) -> tuple[int, str, str]:
    """`ciqueue-gha run --workers 2 -- ARGS` in `suite`: exit code, stdout, stderr."""
    merged = tmp_path / "merged.xml"
    argv = [*cli(), "run", "--workers", "2", "--junit-xml", str(merged), "--", *pytest_args]
    done = commands.run("run", argv, cwd=suite, env=clean_env(tmp_path))
    stdout, stderr = done.stdout.read_text(), done.stderr.read_text()
    assert_no_traceback(stdout, stderr)
    return done.process.returncode, stdout, stderr


@pytest.mark.parametrize("shape", ["run", "worker"])
def test_no_tests_collected_is_a_usage_error(
    shape: str, commands: Commands, tmp_path: Path, redis_server: PrivateRedis
) -> None:
    suite = copy_suite("empty", tmp_path)
    if shape == "run":
        code, _, stderr = run_locally(commands, tmp_path, suite)
        assert "every worker exited before queueing a test (exit codes 2, 2)" in stderr
    else:
        build = ["--redis-url", redis_server.url, "--build-id", new_build_id("empty")]
        argv = [*cli(), "worker", *build, "--worker-id", "w"]
        done = commands.run("worker", argv, cwd=suite, env=clean_env(tmp_path))
        code, stderr = done.process.returncode, done.stderr.read_text()
        assert_no_traceback(done.stdout.read_text(), stderr)
    assert code == EXIT_USAGE
    assert "ciqueue-gha: error: no tests collected: there is nothing to queue" in stderr


@pytest.mark.parametrize("shape", ["run", "worker"])
def test_a_pytest_usage_error_is_a_usage_error(
    shape: str, commands: Commands, tmp_path: Path, redis_server: PrivateRedis
) -> None:
    suite = copy_suite("bad_input", tmp_path)
    if shape == "run":
        code, stdout, stderr = run_locally(commands, tmp_path, suite, "--no-such-option")
        output = stdout + stderr
        assert error_lines(stderr) == [
            "ciqueue-gha: error: every worker exited before queueing a test (exit codes 2, 2); "
            "their output is above"
        ], stderr
    else:
        build = ["--redis-url", redis_server.url, "--build-id", new_build_id("usage")]
        argv = [*cli(), "worker", *build, "--worker-id", "w", "--", "--no-such-option"]
        done = commands.run("worker", argv, cwd=suite, env=clean_env(tmp_path))
        code, output = done.process.returncode, done.output()
        assert_no_traceback(output)
    assert code == EXIT_USAGE, output
    assert "unrecognized arguments: --no-such-option" in output


def test_workers_collecting_different_tests_lose_none(
    commands: Commands, tmp_path: Path, redis_server: PrivateRedis
) -> None:
    """The first worker queues what it collected; a second one that collected another set
    says so, and what only it collected is reported as not run (exit 3), never dropped."""
    suite = copy_suite("bad_input", tmp_path)
    merged = tmp_path / "merged.xml"
    build = ["--redis-url", redis_server.url, "--build-id", new_build_id("mismatch")]
    env = clean_env(tmp_path)
    first = [*cli(), "worker", *build, "--worker-id", "first", "--", "-k", "before or after_one"]
    second = [*cli(), "worker", *build, "--worker-id", "second", "--", "-k", "before or after_two"]
    done_first = commands.run("first", first, cwd=suite, env=env)
    done_second = commands.run("second", second, cwd=suite, env=env)
    summary = [*cli(), "summary", *build, "--junit-xml", str(merged)]
    done_summary = commands.run("summary", summary, cwd=suite, env=env)
    assert_no_traceback(done_first.output(), done_second.output(), done_summary.output())

    assert done_first.process.returncode == 0, done_first.output()
    warning = [line for line in done_second.output().splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "1 units collected here are not queued" in warning[0]
    assert done_summary.process.returncode == EXIT_INCOMPLETE, done_summary.output()
    stray = "check_bad.py::test_after_two"
    assert any(
        line.startswith(f"NOT RUN {stray}: collected by second only")
        for line in done_summary.stdout.read_text().splitlines()
    ), done_summary.output()
    cases = junit_by_case(merged)
    expected = {"check_bad.py::test_before", "check_bad.py::test_after_one", stray}
    assert set(cases) == {junit_names(nodeid) for nodeid in expected}
    assert cases[junit_names(stray)].outcome == "error"
    assert cases[junit_names("check_bad.py::test_before")].outcome == "passed"
    assert cases[junit_names("check_bad.py::test_after_one")].outcome == "passed"


def test_a_test_calling_os_exit_is_an_error_and_no_test_is_lost(
    commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite("bad_input", tmp_path)
    code, stdout, _ = run_locally(
        commands, tmp_path, suite, "-k", "before or os_exit or after", SUITE
    )
    assert code == EXIT_FAILED, stdout
    exits = "check_bad.py::test_calls_os_exit"
    # Recorded by the worker's heartbeat helper, which saw it die holding the unit's lease.
    assert f"ERROR {exits} - {exits} ended the worker (exit status 3)" in stdout
    cases = junit_by_case(tmp_path / "merged.xml")
    names = ["test_before", "test_calls_os_exit", "test_after_one", "test_after_two"]
    assert set(cases) == {junit_names(f"check_bad.py::{name}") for name in names}
    assert cases[junit_names(exits)].outcome == "error"
    passed = [
        name for name in names if cases[junit_names(f"check_bad.py::{name}")].outcome == "passed"
    ]
    assert passed == ["test_before", "test_after_one", "test_after_two"]


def test_50_mb_of_output_is_cut_to_size_and_the_results_kept(
    commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite("bad_input", tmp_path)
    code, stdout, _ = run_locally(commands, tmp_path, suite, "-k", "50_mb", SUITE)
    assert code == EXIT_FAILED, stdout[-3000:]
    merged = tmp_path / "merged.xml"
    assert merged.stat().st_size < 1_000_000
    cases = junit_by_case(merged)
    passing, failing = (
        "check_bad.py::test_prints_50_mb",
        "check_bad.py::test_prints_50_mb_then_fails",
    )
    assert set(cases) == {junit_names(passing), junit_names(failing)}
    assert cases[junit_names(passing)].outcome == "passed"
    assert cases[junit_names(failing)].outcome == "failed"
    text = merged.read_text(encoding="utf-8")
    assert "failed after printing 50 MB" in text
    assert "characters cut]" in text
    assert len(stdout) < 1_000_000
