"""Every numeric option, given on the command line or as CIQUEUE_*, is finite and in range:
anything else is exit 2 and one line naming the option and the allowed range, the value
echoed cut to 100 characters; never a traceback, an OverflowError or a hang (issue 10, #7).

Each case is a real `ciqueue-gha worker | summary | run` process; options are checked before
any connection, so the Redis URL points nowhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_USAGE
from ciqueue_gha.truncate import VALUE_LIMIT
from tests.e2e.test_runner import clean_env, cli

#: Longest a case may take: a value that hangs the command (``nan``) fails here instead.
LIMIT = 60.0

NOWHERE = ["--redis-url", "redis://127.0.0.1:1", "--build-id", "ranges"]

#: 10 KB: a float parses it as inf, an int refuses it; either way it is echoed cut.
HUGE = "9" * 10_000

#: Bad for every number; 0 too where an option needs more than 0.
EVERY_BAD = ("nan", "inf", "-inf", "-1", "1e12", HUGE)
ZERO_BAD = (*EVERY_BAD, "0")

WORKER = ("worker",)
SUMMARY = ("summary",)
RUN = ("run",)

#: option -> (the commands taking it, its bad values)
NUMERIC: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "--attempt": (WORKER + SUMMARY + RUN, ZERO_BAD),
    "--lease-timeout": (WORKER + RUN, ZERO_BAD),
    "--heartbeat-interval": (WORKER + RUN, ZERO_BAD),
    "--max-test-duration": (WORKER + RUN, ZERO_BAD),
    "--max-requeues": (WORKER + RUN, EVERY_BAD),
    "--requeue-tolerance": (WORKER + RUN, (*EVERY_BAD, "1.5")),
    "--max-failures": (WORKER + RUN, ZERO_BAD),
    "--max-consecutive-failures": (WORKER + RUN, EVERY_BAD),
    "--queue-init-timeout": (WORKER + SUMMARY + RUN, ZERO_BAD),
    "--report-timeout": (SUMMARY + RUN, ZERO_BAD),
    "--inactive-workers-timeout": (SUMMARY + RUN, ZERO_BAD),
    "--progress-interval": (WORKER + SUMMARY + RUN, ZERO_BAD),
    "--workers": (RUN, ZERO_BAD),
    "--repeat-new": (WORKER + RUN, (*ZERO_BAD, "101")),
    "--worker-index": (WORKER, EVERY_BAD),
    "--worker-total": (WORKER + SUMMARY, ZERO_BAD),
}

#: What a message says of the allowed values.
ALLOWED = re.compile(
    r"is not (a (whole )?number( of seconds)? (from \S+ to \S+|above \S+, at most \S+))$"
)


def env_name(option: str) -> str:
    return "CIQUEUE_" + option.removeprefix("--").replace("-", "_").upper()


def cases() -> list[tuple[str, str, str, str]]:
    """(command, option, value, given as flag | env): every bad value as a flag to the first
    command taking the option (they share one checker), nan (the value that hung) and the
    10 KB value to the others, and nan through the environment variable to each."""
    found = []
    for option, (commands, values) in NUMERIC.items():
        for n, command in enumerate(commands):
            shown = values if n == 0 else ("nan", HUGE)
            found += [(command, option, value, "flag") for value in shown]
            found.append((command, option, "nan", "env"))
    return found


def case_id(case: tuple[str, str, str, str]) -> str:
    command, option, value, via = case
    return f"{command}{option}={value[:8]}-{via}"


def run_cli(tmp_path: Path, command: str, *args: str, **env: str) -> tuple[int, str, str]:
    argv = [*cli(), command, *NOWHERE, *args]
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    return done.returncode, done.stdout, done.stderr


def assert_one_line_usage_error(code: int, stdout: str, stderr: str, names: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming `names`, value cut; the line."""
    assert "Traceback" not in stdout + stderr, stderr
    assert code == EXIT_USAGE, (code, stderr[:2000])
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr[:2000]
    line = lines[0]
    assert line.startswith("ciqueue-gha: usage error: "), line[:300]
    assert names in line, line[:300]
    # Echoed cut: no run of the value longer than the limit, and the message stays short.
    assert not re.search(rf"(.)\1{{{VALUE_LIMIT}}}", line), line[:300]
    assert len(line) < 500, line[:600]
    return line


@pytest.mark.slow
@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_a_bad_number_is_one_line_and_exit_2(
    case: tuple[str, str, str, str], tmp_path: Path
) -> None:
    command, option, value, via = case
    if via == "flag":
        code, stdout, stderr = run_cli(tmp_path, command, option, value)
    else:
        code, stdout, stderr = run_cli(tmp_path, command, **{env_name(option): value})
    line = assert_one_line_usage_error(code, stdout, stderr, f"'{option}'")
    assert ALLOWED.search(line), line
    if value == HUGE:
        assert f"({len(HUGE)} characters)" in line


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("worker", "--lease-timeout", "inf"),  # was an OverflowError traceback
        ("worker", "--lease-timeout", "1e12"),  # was an OverflowError traceback
        ("summary", "--report-timeout", "nan"),  # hung forever
        ("summary", "--queue-init-timeout", "nan"),  # hung forever
    ],
)
def test_the_values_that_crashed_or_hung(
    command: str, option: str, value: str, tmp_path: Path
) -> None:
    code, stdout, stderr = run_cli(tmp_path, command, option, value)
    line = assert_one_line_usage_error(code, stdout, stderr, f"'{option}'")
    assert f"'{value}' is not a number of seconds" in line


@pytest.mark.parametrize(
    ("command", "option", "value", "says"),
    [
        ("worker", "--unit", "u" * 10_000, "is not one of test, file"),
        ("worker", "--worker-id", "w" * 10_000, "is not a worker id"),
        ("worker", "--worker-id", "two\nlines", "is not a worker id"),
        ("run", "--unit", "u" * 10_000, "is not one of test, file"),
    ],
)
def test_a_bad_word_is_echoed_cut(
    command: str, option: str, value: str, says: str, tmp_path: Path
) -> None:
    code, stdout, stderr = run_cli(tmp_path, command, option, value)
    line = assert_one_line_usage_error(code, stdout, stderr, f"'{option}'")
    assert says in line


@pytest.mark.parametrize("command", ["worker", "summary", "run"])
def test_a_10_kb_build_id_is_echoed_cut(command: str, tmp_path: Path) -> None:
    argv = [*cli(), command, "--redis-url", "redis://127.0.0.1:1", "--build-id", "b" * 10_000]
    done = subprocess.run(
        argv, cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=LIMIT
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, done.stderr[:2000]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ciqueue-gha: error:")]
    assert len(errors) == 1, done.stderr[:2000]
    assert "invalid build id 'bbbb" in errors[0] and "(10000 characters)" in errors[0]
    assert len(errors[0]) < 300


def test_a_flag_from_its_variable_is_echoed_cut(tmp_path: Path) -> None:
    code, stdout, stderr = run_cli(tmp_path, "worker", CIQUEUE_INSECURE_TLS="t" * 10_000)
    line = assert_one_line_usage_error(code, stdout, stderr, "'--insecure-tls'")
    assert "is not a boolean" in line


@pytest.mark.parametrize("host", ["h" * 300, "a..b"])
def test_a_url_with_a_bad_host_is_one_line_echoed_cut(host: str, tmp_path: Path) -> None:
    """Was a UnicodeError traceback from the resolver; a 10 KB URL was echoed whole."""
    argv = [*cli(), "worker", "--build-id", "b", "--redis-url", f"redis://:pw@{host}"]
    done = subprocess.run(
        argv, cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=LIMIT
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == EXIT_USAGE, done.stderr[:2000]
    assert done.stderr.splitlines() == [
        line for line in done.stderr.splitlines() if line.startswith("ciqueue-gha: error:")
    ]
    assert len(done.stderr.splitlines()) == 1 and len(done.stderr) < 300, done.stderr[:2000]
    assert "the host is not a valid host name" in done.stderr
    assert "pw" not in done.stderr


@pytest.mark.parametrize("command", ["worker", "run"])
def test_options_that_disagree_are_one_line(command: str, tmp_path: Path) -> None:
    """A heartbeat interval beyond the lease timeout: `run` says so once, before it starts
    anything (it said so once per worker, inside their logs)."""
    code, stdout, stderr = run_cli(
        tmp_path, command, "--lease-timeout", "30", "--heartbeat-interval", "40"
    )
    assert "Traceback" not in stdout + stderr
    assert code == EXIT_USAGE, stderr[:2000]
    assert stderr.splitlines() == [
        "ciqueue-gha: error: --heartbeat-interval must be positive and below --lease-timeout"
    ]
