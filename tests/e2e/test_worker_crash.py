"""A test that ends its worker, end to end (DESIGN.md §2): the worker's heartbeat helper sees
it die and records the test as an error, where the worker no longer can.

Each way a test can end the process (os._exit, SIGKILL, a segfault) is reported as an error
of that test in the summary and the merged JUnit, is run once (never handed to the next
worker, to crash that one too), and the other tests run on the remaining worker; the build
exits 1, with no traceback. The suite is suites/crash, run from a copy of its folder; each
crashing test notes in runs.txt that it started.

os._exit is also caught inside the worker by the pytest plugin, which records the same error
first (the helper's record is then stale): the test accepts either's words. SIGKILL and a
segfault can only be seen from outside: those prove the helper's part.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED
from ciqueue_gha.report.junit import junit_names
from tests.e2e.test_bad_input import assert_no_traceback, run_locally
from tests.e2e.test_runner import Commands, clean_env, cli, copy_suite, junit_by_case
from tests.e2e.test_runner import commands as commands  # the fixture

SUITE = "check_crash.py"
FINE = [f"{SUITE}::test_fine[{index}]" for index in range(6)]


def runs(suite: Path) -> list[str]:
    """The crashing tests that started, once per run."""
    return [line.split()[0] for line in (suite / "runs.txt").read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("exits", ("ended the worker (exit status 3)",)),
        ("kills_itself", ("ended the worker (signal SIGKILL)",)),
        ("segfaults", ("ended the worker (signal SIGSEGV)",)),
    ],
)
def test_a_test_that_ends_its_worker_is_an_error_run_once(
    name: str, how: tuple[str, ...], commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite("crash", tmp_path)
    code, stdout, stderr = run_locally(commands, tmp_path, suite, "-k", f"{name} or fine", SUITE)

    assert code == EXIT_FAILED, stdout + stderr
    crashed = f"{SUITE}::test_{name}"
    (error,) = [line for line in stdout.splitlines() if line.startswith("ERROR ")]
    assert error.startswith(f"ERROR {crashed} - {crashed} "), stdout
    assert error.endswith(how), stdout
    assert runs(suite) == [name]  # not handed to the other worker
    cases = junit_by_case(tmp_path / "merged.xml")
    assert set(cases) == {junit_names(nodeid) for nodeid in [crashed, *FINE]}
    assert cases[junit_names(crashed)].outcome == "error"
    assert all(cases[junit_names(nodeid)].outcome == "passed" for nodeid in FINE)


def test_a_file_unit_that_ends_its_worker_is_an_error_of_the_file(
    commands: Commands, tmp_path: Path
) -> None:
    """With --unit file the helper knows the file, not the test in it: the record names it."""
    suite = copy_suite("crash", tmp_path)
    merged = tmp_path / "merged.xml"
    argv = [*cli(), "run", "--workers", "2", "--unit", "file", "--junit-xml", str(merged)]
    argv += ["--", "-k", "kills_itself or fine", SUITE]
    done = commands.run("run", argv, cwd=suite, env=clean_env(tmp_path))
    stdout = done.stdout.read_text()
    assert_no_traceback(stdout, done.stderr.read_text())

    assert done.process.returncode == EXIT_FAILED, done.output()
    assert f"ERROR {SUITE} - {SUITE} ended the worker (signal SIGKILL)" in stdout.splitlines()
    assert runs(suite) == ["kills_itself"]
    cases = junit_by_case(merged)
    assert set(cases) == {junit_names(SUITE)}
    assert cases[junit_names(SUITE)].outcome == "error"
