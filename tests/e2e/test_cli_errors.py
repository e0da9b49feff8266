"""Bad input, as a user meets it: the real CLI in a subprocess answers with one line on stderr
and a documented exit code (2 usage, 4 infrastructure), never a traceback, never a password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ciqueue_gha.errors import EXIT_INFRASTRUCTURE, EXIT_USAGE
from tests.support.ports import reserve_port
from tests.support.redis_server import ControlledRedis

ROOT = Path(__file__).resolve().parents[2]
NEWER_REDIS_CLI = "tests.support.newer_redis_cli"

SERVER_PASSWORD = "server-pw-7f3a"
WRONG_PASSWORD = "wrong-pw-91cc"

# A closed port must fail fast: the first contact retries for about a second, not minutes.
UNREACHABLE_WITHIN = 5.0


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    module: str = "ciqueue_gha.cli",
) -> Result:
    """Run ``ciqueue-gha ARGS`` (or `module`) with no CIQUEUE_*/GitHub variables leaking in
    from outside."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CIQUEUE_", "GITHUB_")) and k != "SSL_CERT_FILE"
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def assert_one_line_error(result: Result, code: int, *mentions: str) -> str:
    """The failure is exit `code` and one line on stderr naming each of `mentions`."""
    assert "Traceback" not in result.stdout + result.stderr
    assert result.code == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ciqueue-gha:")
    for mention in mentions:
        assert mention.lower() in lines[0].lower()
    return lines[0]


@pytest.fixture(scope="module")
def password_redis() -> Iterator[ControlledRedis]:
    with ControlledRedis(password=SERVER_PASSWORD) as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    # Reserved: nothing listens there, and no other test process will.
    return reserve_port()


# --- Redis that cannot be reached or refuses us ---------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["redis", "check", "--redis-url", "URL"],
        ["queue", "status", "--redis-url", "URL", "--build-id", "b1"],
        ["summary", "--redis-url", "URL", "--build-id", "b1"],
        ["worker", "--redis-url", "URL", "--build-id", "b1", "--", "-q"],
    ],
    ids=["redis-check", "queue-status", "summary", "worker"],
)
def test_unreachable_redis_fails_fast_with_exit_4(command: list[str], closed_port: int) -> None:
    url = f"redis://127.0.0.1:{closed_port}/0"
    result = run_cli(*(url if arg == "URL" else arg for arg in command))
    line = assert_one_line_error(result, EXIT_INFRASTRUCTURE, "cannot reach Redis")
    assert f"127.0.0.1:{closed_port}" in line
    assert "refused" in line.lower()
    assert result.seconds < UNREACHABLE_WITHIN


def test_unreachable_redis_from_the_environment(closed_port: int) -> None:
    result = run_cli(
        "queue",
        "status",
        env={"CIQUEUE_REDIS_URL": f"redis://127.0.0.1:{closed_port}", "GITHUB_RUN_ID": "7"},
    )
    assert_one_line_error(result, EXIT_INFRASTRUCTURE, "cannot reach Redis")


@pytest.mark.parametrize(
    "credentials",
    [f":{WRONG_PASSWORD}@", f"default:{WRONG_PASSWORD}@", "", "?password"],
    ids=["password", "user-and-password", "none", "query-password"],
)
def test_wrong_password_is_exit_4_and_never_printed(
    password_redis: ControlledRedis, credentials: str
) -> None:
    base = f"127.0.0.1:{password_redis.port}/0"
    if credentials == "?password":
        url = f"redis://{base}?password={WRONG_PASSWORD}"
    else:
        url = f"redis://{credentials}{base}"
    result = run_cli("redis", "check", "--redis-url", url)
    assert_one_line_error(result, EXIT_INFRASTRUCTURE, "refused the credentials")
    output = result.stdout + result.stderr
    assert WRONG_PASSWORD not in output
    assert SERVER_PASSWORD not in output


def test_wrong_password_from_the_environment(password_redis: ControlledRedis) -> None:
    url = f"redis://:{WRONG_PASSWORD}@127.0.0.1:{password_redis.port}/0"
    result = run_cli("queue", "status", env={"CIQUEUE_REDIS_URL": url, "CIQUEUE_BUILD_ID": "b"})
    assert_one_line_error(result, EXIT_INFRASTRUCTURE, "refused the credentials", ":***@")
    assert WRONG_PASSWORD not in result.stdout + result.stderr


def test_right_password_works_and_is_not_printed(password_redis: ControlledRedis) -> None:
    result = run_cli("redis", "check", "--redis-url", password_redis.url)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("ok: Redis ")
    assert ":***@" in result.stdout
    assert SERVER_PASSWORD not in result.stdout + result.stderr


def test_redis_too_old_for_the_scripts(redis_url: str) -> None:
    # The CLI made to need a Redis newer than any: the real server is then "too old".
    version = redis.Redis.from_url(redis_url).info("server")["redis_version"]
    result = run_cli("99.0", "redis", "check", "--redis-url", redis_url, module=NEWER_REDIS_CLI)
    assert_one_line_error(result, EXIT_INFRASTRUCTURE, "too old", ">= 99.0", f"Redis {version}")
    ok = run_cli("6.0", "redis", "check", "--redis-url", redis_url, module=NEWER_REDIS_CLI)
    assert ok.code == 0, ok.stderr


# --- Malformed URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:6379", "scheme"),
        ("redis://localhost:notaport", "port"),
        ("redis://:99999", "port"),
        ("unix://", "socket path"),
        ("garbage", "scheme"),
        ("not a url at all", "scheme"),
        ("redis://", "no host"),
        ("redis://localhost/zero", "database"),
        ("redis://localhost/0?foo=bar", "unsupported query parameter"),
        ("rediss://localhost/0?ssl_cert_reqs=none", "ssl_cert_reqs"),
        ("redis://[::1", "IPv6"),
    ],
)
@pytest.mark.parametrize("command", [["redis", "check"], ["queue", "status", "--build-id", "b1"]])
def test_malformed_url_is_a_usage_error(url: str, problem: str, command: list[str]) -> None:
    result = run_cli(*command, "--redis-url", url)
    assert_one_line_error(result, EXIT_USAGE, "malformed Redis URL", problem)


def test_malformed_url_never_shows_its_password() -> None:
    result = run_cli("redis", "check", "--redis-url", f"redis://:{WRONG_PASSWORD}@host:notaport")
    line = assert_one_line_error(result, EXIT_USAGE, "port", ":***@")
    assert WRONG_PASSWORD not in line + result.stdout
    # A '#' in the password cuts a URL short: still nothing of the password is shown.
    result = run_cli("redis", "check", "--redis-url", f"redis://:{WRONG_PASSWORD}#x@host:6379")
    line = assert_one_line_error(result, EXIT_USAGE, "percent-encode")
    assert WRONG_PASSWORD not in line + result.stdout


# --- Build ids and test lists -------------------------------------------------------------


@pytest.mark.parametrize("build_id", ["has space", "a{b}", "{x", "x}", "a:b"])
def test_bad_build_id_is_a_usage_error(redis_url: str, build_id: str, tmp_path: Path) -> None:
    tests = tmp_path / "tests.txt"
    tests.write_text("t1\nt2\n")
    populate = ["queue", "populate", "--redis-url", redis_url, "--tests-file", str(tests)]
    result = run_cli(*populate, "--build-id", build_id)
    assert_one_line_error(result, EXIT_USAGE, "invalid build id", repr(build_id))
    from_env = run_cli(*populate, env={"CIQUEUE_BUILD_ID": build_id})
    assert_one_line_error(from_env, EXIT_USAGE, "invalid build id")
    status = run_cli("queue", "status", "--redis-url", redis_url, "--build-id", build_id)
    assert_one_line_error(status, EXIT_USAGE, "invalid build id")
    # Nothing reached Redis under that name.
    assert not redis.Redis.from_url(redis_url).exists(f"ciq:{{{build_id}}}:1:ready")


def test_build_id_is_checked_before_redis_is_contacted(closed_port: int) -> None:
    result = run_cli(
        "queue", "status", "--redis-url", f"redis://127.0.0.1:{closed_port}", "--build-id", "a b"
    )
    assert_one_line_error(result, EXIT_USAGE, "invalid build id")


def test_missing_build_id_says_where_it_comes_from(redis_url: str) -> None:
    result = run_cli("queue", "status", "--redis-url", redis_url)
    assert_one_line_error(result, EXIT_USAGE, "no build id", "--build-id")


def test_missing_redis_url_is_a_usage_error() -> None:
    result = run_cli("queue", "status", "--build-id", "b1")
    assert_one_line_error(result, EXIT_USAGE, "--redis-url")
    result = run_cli("redis", "check")
    assert_one_line_error(result, EXIT_USAGE, "--redis-url")


@pytest.mark.parametrize(
    "content", ["", "\n", "   \n\t\n\n"], ids=["empty", "one-blank-line", "whitespace"]
)
def test_empty_test_list_is_a_usage_error(redis_url: str, tmp_path: Path, content: str) -> None:
    tests = tmp_path / "tests.txt"
    tests.write_text(content)
    common = ["queue", "populate", "--redis-url", redis_url, "--build-id", "empty-list"]
    result = run_cli(*common, "--tests-file", str(tests))
    assert_one_line_error(result, EXIT_USAGE, "no tests to queue", "empty")
    from_stdin = run_cli(*common, "--tests-file", "-", stdin=content)
    assert_one_line_error(from_stdin, EXIT_USAGE, "no tests to queue")
    assert not redis.Redis.from_url(redis_url).exists("ciq:{empty-list}:1:ready")


def test_repeated_test_is_a_usage_error(redis_url: str) -> None:
    result = run_cli(
        "queue", "populate", "--redis-url", redis_url, "--build-id", "dupes", "--tests-file", "-",
        stdin="t1\nt2\nt1\n",
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "'t1' twice")


def test_missing_tests_file_is_a_usage_error(redis_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.txt"
    result = run_cli(
        "queue", "populate", "--redis-url", redis_url, "--build-id", "b1",
        "--tests-file", str(missing),
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "--tests-file", "no-such-file.txt")


def test_tests_file_that_is_not_text_is_a_usage_error(redis_url: str, tmp_path: Path) -> None:
    binary = tmp_path / "tests.bin"
    binary.write_bytes(b"t1\n\xff\xfe\x00\n")
    result = run_cli(
        "queue", "populate", "--redis-url", redis_url, "--build-id", "b1",
        "--tests-file", str(binary),
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "UTF-8")


# --- The command line itself --------------------------------------------------------------


def test_no_command_prints_help_and_one_line() -> None:
    result = run_cli()
    assert_one_line_error(result, EXIT_USAGE, "missing command")
    assert "Commands:" in result.stdout


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (["frobnicate"], "No such command"),
        (["redis", "check", "--no-such-option"], "--no-such-option"),
        (
            ["queue", "status", "--redis-url", "redis://h", "--build-id", "b", "--attempt", "0"],
            "--attempt",
        ),
        (["redis", "start", "--port", "70000"], "--port"),
    ],
)
def test_click_usage_errors_are_one_line(args: list[str], mention: str) -> None:
    assert_one_line_error(run_cli(*args), EXIT_USAGE, mention)


def test_bad_attempt_from_github_is_a_usage_error(redis_url: str) -> None:
    result = run_cli(
        "queue", "status", "--redis-url", redis_url,
        env={"GITHUB_RUN_ID": "5", "GITHUB_RUN_ATTEMPT": "first"},
    )  # fmt: skip
    assert_one_line_error(result, EXIT_USAGE, "GITHUB_RUN_ATTEMPT")
