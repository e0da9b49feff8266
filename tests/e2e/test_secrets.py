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

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_FAILED
from ciqueue_gha.redis_server import PrivateRedis
from tests.e2e.test_runner import Commands, clean_env, cli, commands, new_build_id

__all__ = ["commands"]  # the fixture, shared with test_runner

pytestmark = pytest.mark.slow

SUITE = Path(__file__).resolve().parent / "suites" / "hostile"
TOKEN = f"ghs_{secrets.token_hex(18)}"


@pytest.fixture(scope="module")
def password_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis(password=f"pw{secrets.token_hex(16)}") as server:
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


def own_junit(tmp: Path, index: int) -> list[str]:
    return ["--junit-xml", str(tmp / f"worker-{index}.xml"), "--", "check_environ.py"]


def test_run_keeps_the_secrets_from_its_workers(
    commands: Commands, tmp_path: Path, password_redis: PrivateRedis
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
    commands: Commands, tmp_path: Path, password_redis: PrivateRedis
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
            [*cli(), "worker", *build, "--worker-id", f"w{index}", *own_junit(tmp_path, index)],
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
