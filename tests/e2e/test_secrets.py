"""Finding 9 of issue 10: the Redis password and the GitHub token never reach a test.

A test (suites/hostile/check_environ.py) prints and fails with everything it can read of
its own environment and command line and of every ancestor's: ``os.environ``, and
``/proc/PID/environ`` and ``/proc/PID/cmdline``, which keep what each program started with.
Given the secrets every way a user gives them (the URL on the command line or in
``CIQUEUE_REDIS_URL``, the token in ``CIQUEUE_GITHUB_TOKEN`` and ``GITHUB_TOKEN``), through
``run`` and through ``worker`` x2 + ``summary``: no output file holds the password, the URL
or the token (stdout, stderr, each worker's log and JUnit, the merged JUnit, the job
summary), while the test's output is there, so the search could have found them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED
from ciqueue_gha.secrets import SECRETS_FD, secrets_pipe, split_secrets
from tests.e2e.test_runner import Commands, clean_env, cli, commands, new_build_id
from tests.support.redis_server import ControlledRedis

__all__ = ["commands"]  # the fixture, shared with test_runner

pytestmark = pytest.mark.slow

SUITE = Path(__file__).resolve().parent / "suites" / "hostile"
TOKEN = f"ghs_{secrets.token_hex(18)}"


@pytest.fixture(scope="module")
def password_redis() -> Iterator[ControlledRedis]:
    with ControlledRedis(password=f"pw{secrets.token_hex(16)}") as server:
        yield server


def secret_env(tmp: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp,
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
        CIQUEUE_GITHUB_TOKEN=TOKEN,
        GITHUB_TOKEN=TOKEN,
        **extra,
    )


def assert_nowhere(values: list[str], folder: Path) -> None:
    """No file under `folder` holds any of `values`; returns after checking there is output
    to search (the test's own, with the environment it showed)."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    texts = {path: path.read_bytes().decode("utf-8", "replace") for path in files}
    leaks = [f"{path}: {v[:6]}…" for path, text in texts.items() for v in values if v in text]
    assert not leaks, leaks
    shown = [path.name for path, text in texts.items() if "--- os.environ" in text]
    assert shown, "the test's output is in no file: nothing was searched"


def worker_args(tmp: Path, index: int) -> list[str]:
    return ["--junit-xml", str(tmp / f"worker-{index}.xml"), "--", "check_environ.py"]


def test_run_keeps_the_secrets_from_its_workers(
    commands: Commands, tmp_path: Path, password_redis: ControlledRedis
) -> None:
    suite = Path(shutil.copytree(SUITE, tmp_path / "suite"))
    url, password = password_redis.url, str(password_redis.password)
    argv = [*cli(), "run", "--workers", "2", "--redis-url", url, "--build-id"]
    argv += [new_build_id("secrets-run"), "--log-dir", str(tmp_path / "logs")]
    argv += ["--junit-xml", str(tmp_path / "merged.xml"), "--", "check_environ.py"]
    run = commands.run("run", argv, cwd=suite, env=secret_env(tmp_path))

    assert run.process.returncode == EXIT_FAILED, run.output()
    logs = sorted(path.name for path in (tmp_path / "logs").iterdir())
    assert logs == ["worker-0.log", "worker-0.xml", "worker-1.log", "worker-1.xml"]
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "merged.xml").is_file()
    worker_log = "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "CIQUEUE_WORKER_ID=worker-" in worker_log
    assert "run\n--workers\n2" in worker_log  # `run`'s command line, as its worker reads it
    assert_nowhere([url, password, TOKEN], tmp_path)


def test_worker_and_summary_keep_the_secrets_from_the_tests(
    commands: Commands, tmp_path: Path, password_redis: ControlledRedis
) -> None:
    suite = Path(shutil.copytree(SUITE, tmp_path / "suite"))
    url, password = password_redis.url, str(password_redis.password)
    build = ["--build-id", new_build_id("secrets-matrix")]
    merged = ["--junit-xml", str(tmp_path / "merged.xml"), "--inactive-workers-timeout", "60"]
    summary = commands.start(
        "summary",
        [*cli(), "summary", "--redis-url", url, *build, *merged],
        cwd=suite,
        env=secret_env(tmp_path),
    )
    workers = [
        commands.start(
            f"worker-{index}",
            [*cli(), "worker", *build, "--worker-id", f"w{index}", *worker_args(tmp_path, index)],
            cwd=suite,
            env=secret_env(tmp_path, CIQUEUE_REDIS_URL=url),
        )
        for index in range(2)
    ]
    codes = sorted(worker.wait() for worker in workers)
    assert summary.wait() == EXIT_FAILED, summary.output()
    assert codes == [0, 1], [w.output() for w in workers]
    ran = next(w for w in workers if w.process.returncode == 1)
    assert "CIQUEUE_WORKER_ID=w" in ran.stdout.read_text()
    assert (tmp_path / "summary.md").is_file()
    assert_nowhere([url, password, TOKEN], tmp_path)


# --- the hand-over itself ----------------------------------------------------------------------


def test_split_takes_secrets_from_options_before_the_pytest_arguments_and_the_environment() -> None:
    args = ["worker", "--redis-url", "redis://:a@h/0", "--github-token=t1", "-x"]
    args += ["--", "--redis-url", "kept"]
    env = {"CIQUEUE_REDIS_URL": "redis://:b@h/0", "GITHUB_TOKEN": "t2", "HOME": "/h"}
    kept, clean, found = split_secrets(args, env)
    assert kept == ["worker", "-x", "--", "--redis-url", "kept"]
    assert clean == {"HOME": "/h"}
    # The command line wins over the environment, as with click.
    assert found == {
        "CIQUEUE_REDIS_URL": "redis://:a@h/0",
        "CIQUEUE_GITHUB_TOKEN": "t1",
        "GITHUB_TOKEN": "t2",
    }
    # An option without its value is left for click to report.
    assert split_secrets(["worker", "--redis-url"], {})[0] == ["worker", "--redis-url"]


CHILD = """
import json, os
from ciqueue_gha.secrets import SECRETS_FD, received
fd = int(os.environ[SECRETS_FD])
values = received()
gone = SECRETS_FD not in os.environ
try:
    os.fstat(fd)
    closed = False
except OSError:
    closed = True
print(json.dumps([values, gone, closed]))
"""


def test_a_pipe_hands_the_secrets_over_and_is_closed_once_read() -> None:
    pipe = secrets_pipe({"CIQUEUE_REDIS_URL": "redis://:pw@h/0"})
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            env={**os.environ, SECRETS_FD: str(pipe)},
            pass_fds=(pipe,),
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.close(pipe)
    assert json.loads(done.stdout) == [{"CIQUEUE_REDIS_URL": "redis://:pw@h/0"}, True, True]


def test_a_worker_given_a_bad_pipe_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), SECRETS_FD: "99"}
    done = subprocess.run(
        [*cli(), "worker", "--build-id", "b", "--", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ciqueue-gha: error: {SECRETS_FD}='99' names no readable pipe"
    ]
