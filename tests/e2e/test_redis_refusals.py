"""Redis refuses the queue's calls: a user whose ACL forbids scripts, a server out of memory.
Through the real CLI (`worker` with its pytest session, `summary`, `run`, `redis check`), each
is one line naming Redis's error and exit 4: never a pytest INTERNALERROR, a traceback, exit 3,
or the password."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_INFRASTRUCTURE
from tests.support.redis_server import ControlledRedis

pytestmark = pytest.mark.slow

ACL_USER = "ciq-runner"
ACL_PASSWORD = "acl-pw-5d21e"

#: Enough tests that populating them alone needs more than the server's 1 MB.
OOM_TESTS = 20_000


def write_suite(folder: Path, tests: int) -> Path:
    folder.mkdir()
    (folder / "test_many.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({tests}))\n"
        "def test_one_of_many_with_a_name_long_enough_to_weigh(n):\n"
        "    pass\n"
    )
    return folder


def ciqueue(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
    env["CIQUEUE_REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "ciqueue_gha.cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("ciqueue-gha: error:")]


def assert_refused(done: subprocess.CompletedProcess[str], *mentions: str) -> None:
    """Exit 4, one error line naming each of `mentions`, nothing else on stderr but `run`'s
    own note of where its logs are; no traceback, no INTERNALERROR, no password."""
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_INFRASTRUCTURE, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert ACL_PASSWORD not in output
    errors = error_lines(done)
    assert len(errors) == 1, done.stderr
    others = [line for line in done.stderr.splitlines() if line not in errors]
    assert all(" workers; logs in " in line for line in others), done.stderr
    for mention in mentions:
        assert mention in errors[0], errors[0]


@pytest.fixture(scope="module")
def no_scripts_url() -> Iterator[str]:
    """A Redis whose user may run anything but scripts."""
    with ControlledRedis() as server:
        admin = redis.Redis.from_url(server.url)
        # Raw ACL words: redis-py's acl_setuser spells channel patterns differently by version.
        admin.execute_command(
            "ACL",
            "SETUSER",
            ACL_USER,
            "on",
            f">{ACL_PASSWORD}",
            "~*",
            "&*",
            "+@all",
            "-evalsha",
            "-eval",
        )
        admin.close()
        yield f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture(scope="module")
def full_url() -> Iterator[str]:
    """A Redis at maxmemory 1 MB that evicts nothing."""
    with ControlledRedis() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory", "1mb")
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
        yield server.url


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("acl") / "suite", 5)


@pytest.fixture(scope="module")
def large_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_suite(tmp_path_factory.mktemp("oom") / "suite", OOM_TESTS)


NOPERM = ("NOPERM", "'evalsha'")
OOM = ("OOM", "maxmemory")


def test_no_script_permission_in_a_worker(no_scripts_url: str, small_suite: Path) -> None:
    done = ciqueue("worker", "--build-id", "acl-w", "--", "-q", url=no_scripts_url, cwd=small_suite)
    assert_refused(done, *NOPERM)


def test_no_script_permission_in_the_summary(no_scripts_url: str, small_suite: Path) -> None:
    done = ciqueue("summary", "--build-id", "acl-s", url=no_scripts_url, cwd=small_suite)
    assert_refused(done, *NOPERM)


def test_no_script_permission_in_run(no_scripts_url: str, small_suite: Path) -> None:
    done = ciqueue(
        "run",
        "--build-id",
        "acl-r",
        "--workers",
        "2",
        "--",
        "-q",
        url=no_scripts_url,
        cwd=small_suite,
    )
    assert_refused(done, *NOPERM)


def test_no_script_permission_in_redis_check(no_scripts_url: str, small_suite: Path) -> None:
    """Loading scripts is allowed, running them is not: the check runs one."""
    assert_refused(ciqueue("redis", "check", url=no_scripts_url, cwd=small_suite), *NOPERM)


def test_out_of_memory_at_populate_in_a_worker(full_url: str, large_suite: Path) -> None:
    done = ciqueue("worker", "--build-id", "oom-w", "--", "-q", url=full_url, cwd=large_suite)
    assert_refused(done, *OOM)


def test_out_of_memory_at_populate_then_the_summary(full_url: str, large_suite: Path) -> None:
    """No worker could populate, and the summary says so: one line, exit 4."""
    worker = ciqueue("worker", "--build-id", "oom-s", "--", "-q", url=full_url, cwd=large_suite)
    assert_refused(worker, *OOM)
    done = ciqueue(
        "summary", "--build-id", "oom-s", "--queue-init-timeout", "2", url=full_url, cwd=large_suite
    )
    assert_refused(done, "no worker populated the queue")


def test_out_of_memory_at_populate_in_run(full_url: str, large_suite: Path) -> None:
    """`run` shows the workers' own words (their log tails) above its one line."""
    done = ciqueue(
        "run", "--build-id", "oom-r", "--workers", "2", "--", "-q", url=full_url, cwd=large_suite
    )
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_INFRASTRUCTURE, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    last = done.stderr.splitlines()[-1]
    assert last.startswith("ciqueue-gha: error: every worker exited before queueing a test")
    assert "exit codes 4, 4" in last
    refused = [line for line in error_lines(done) if "OOM" in line]
    assert len(refused) == 2, done.stderr  # each worker's one line, in its log tail
