"""Failing fast and in one line, through the real CLI: a Redis that never answers, a TLS client
at a plain port, and a Redis that stops answering in the middle of a build (SIGSTOP).

DESIGN.md §1 promises exit 4 with one line; the README, that a Redis that does not answer fails
the first contact in about two seconds and a Redis lost mid-build fails the build within about
ten (defaults.SOCKET_TIMEOUT, RETRY_BUDGET): the bounds asserted here are those with room for a
loaded machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ciqueue_gha import defaults
from ciqueue_gha.connection import connect
from ciqueue_gha.errors import EXIT_INFRASTRUCTURE
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.supervisor import Supervisor
from tests.support.redis_server import ControlledRedis
from tests.support.tcp_proxy import TcpProxy

#: The first contact with a Redis that never answers ends within this, from the moment the
#: process reaches the port to its exit (its start-up is left out: on a loaded machine it
#: alone may take seconds, and it is not what the bound is about).
FIRST_CONTACT_LIMIT = 5.0

#: A Redis stopped mid-build ends every worker and the summary within this.
LOST_MID_BUILD_LIMIT = 20.0

#: Longest any wait of these tests may take before it fails instead of hanging.
WAIT_LIMIT = 60.0


def cli() -> list[str]:
    """The installed `ciqueue-gha` entry point, as a user runs it."""
    script = Path(sys.executable).with_name("ciqueue-gha")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ciqueue_gha.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
    return {**env, **extra}


@dataclass
class Port:
    """A port the commands reach, and when each connection to it arrived (time.monotonic)."""

    address: str
    accepted_at: list[float]


@pytest.fixture(scope="module")
def silent() -> Iterator[Port]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    port = Port(f"127.0.0.1:{listener.getsockname()[1]}", [])

    def accept() -> None:
        with_listener = listener
        while True:
            try:
                accepted.append(with_listener.accept()[0])
            except OSError:  # closed: the module is done
                return
            port.accepted_at.append(time.monotonic())

    threading.Thread(target=accept, daemon=True).start()
    yield port
    listener.close()
    for connection in accepted:
        connection.close()


@pytest.fixture
def plain_redis(redis_server: ControlledRedis) -> Iterator[Port]:
    """A plain (not TLS) redis-server's port, through a proxy that notes each connection."""
    with TcpProxy("127.0.0.1", redis_server.port) as proxy:
        yield Port(f"127.0.0.1:{proxy.port}", proxy.accepted_at)


def commands(url: str, tmp_path: Path) -> dict[str, list[str]]:
    build = ["--redis-url", url, "--build-id", "fail-fast"]
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    return {
        "redis check": ["redis", "check", "--redis-url", url],
        "worker": ["worker", *build, "--", "-q", str(tmp_path / "test_one.py")],
        "summary": ["summary", *build, "--junit-xml", str(tmp_path / "merged.xml")],
        "run": ["run", "--redis-url", url, "--", "-q", str(tmp_path / "test_one.py")],
    }


def assert_fails_fast(argv: list[str], port: Port, *mentions: str) -> None:
    seen = len(port.accepted_at)
    done = subprocess.run(
        [*cli(), *argv], env=clean_env(), capture_output=True, text=True, timeout=WAIT_LIMIT
    )
    ended = time.monotonic()
    assert done.returncode == EXIT_INFRASTRUCTURE, done.stderr
    assert len(port.accepted_at) > seen, f"the command never reached the port: {done.stderr}"
    took = ended - port.accepted_at[seen]
    assert took < FIRST_CONTACT_LIMIT, (took, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ciqueue-gha: error: "), done.stderr
    for mention in mentions:
        assert mention in lines[0], lines[0]


@pytest.mark.parametrize("command", ["redis check", "worker", "summary", "run"])
def test_a_server_that_never_answers_is_exit_4_within_seconds(
    command: str, silent: Port, tmp_path: Path
) -> None:
    url = f"redis://{silent.address}/0"
    assert_fails_fast(commands(url, tmp_path)[command], silent, "cannot reach Redis", "Timeout")


@pytest.mark.parametrize("command", ["redis check", "worker", "summary", "run"])
def test_tls_to_a_port_that_never_answers_is_exit_4_within_seconds(
    command: str, silent: Port, tmp_path: Path
) -> None:
    url = f"rediss://{silent.address}/0"
    assert_fails_fast(commands(url, tmp_path)[command], silent, "cannot reach Redis")


@pytest.mark.parametrize("command", ["redis check", "worker", "summary"])
def test_tls_to_a_plain_redis_port_is_exit_4_within_seconds(
    command: str, plain_redis: Port, tmp_path: Path
) -> None:
    url = f"rediss://{plain_redis.address}/0"
    assert_fails_fast(commands(url, tmp_path)[command], plain_redis, "cannot reach Redis")


# --- Redis stopped in the middle of a build ---------------------------------------------------

SLOW_SUITE = """\
import time

import pytest


@pytest.mark.parametrize("n", range(400))
def test_step(n):
    time.sleep(0.05)
"""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    folder: Path

    def output(self) -> str:
        return "".join(
            (self.folder / f"{self.name}.{stream}").read_text(errors="replace")
            for stream in ("out", "err")
        )

    def stderr(self) -> str:
        return (self.folder / f"{self.name}.err").read_text(errors="replace")


def start(name: str, argv: list[str], folder: Path, url: str) -> Process:
    with (folder / f"{name}.out").open("wb") as out, (folder / f"{name}.err").open("wb") as err:
        popen = subprocess.Popen(
            [*cli(), *argv],
            cwd=folder,
            env=clean_env(CIQUEUE_REDIS_URL=url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return Process(name, popen, folder)


@pytest.fixture
def stopped_redis() -> Iterator[ControlledRedis]:
    """A redis-server of this test's own, which it may SIGSTOP; resumed and stopped after."""
    with ControlledRedis() as server:
        try:
            yield server
        finally:
            if server.process is not None:
                server.process.send_signal(signal.SIGCONT)


def start_build(server: ControlledRedis, folder: Path, build_id: str) -> list[Process]:
    """Two workers and the summary on the slow suite; returns once ten tests are done. The
    summary first, connected before the workers start: on a loaded machine it could
    otherwise first reach Redis after the test stopped it (a first contact fails apart)."""
    (folder / "test_slow.py").write_text(SLOW_SUITE)
    build = ["--build-id", build_id, "--queue-init-timeout", "30"]
    summary = ["summary", *build, "--junit-xml", "merged.xml"]
    processes = [start("summary", summary, folder, server.url)]
    client = connect(server.url)
    try:
        limit = time.monotonic() + WAIT_LIMIT
        while len(client.client_list()) < 2:  # ours, and the summary's
            assert time.monotonic() < limit, "the summary never connected"
            time.sleep(0.05)
        processes += [
            start(
                f"worker-{n}",
                ["worker", *build, "--worker-id", f"w{n}", "--lease-timeout", "5", "--", "-q"],
                folder,
                server.url,
            )
            for n in range(2)
        ]
        supervisor = Supervisor(client, BuildKeys(build_id))
        limit = time.monotonic() + WAIT_LIMIT
        while not (supervisor.status().ready and supervisor.status().finalized >= 10):
            assert time.monotonic() < limit, "the build never got going"
            time.sleep(0.05)
    finally:
        client.close()
    return processes


def wait_all(processes: list[Process], since: float) -> dict[str, float]:
    """Wait for every process (killing those left after WAIT_LIMIT): seconds each took."""
    took: dict[str, float] = {}
    try:
        while len(took) < len(processes) and time.monotonic() < since + WAIT_LIMIT:
            for process in processes:
                if process.name not in took and process.popen.poll() is not None:
                    took[process.name] = time.monotonic() - since
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.popen.returncode is None:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()
    return took


@pytest.mark.slow
def test_redis_stopped_mid_build_ends_workers_and_summary_with_exit_4(
    stopped_redis: ControlledRedis, tmp_path: Path
) -> None:
    processes = start_build(stopped_redis, tmp_path, "stopped")
    assert stopped_redis.process is not None
    stopped_redis.process.send_signal(signal.SIGSTOP)
    took = wait_all(processes, time.monotonic())
    print(f"exit after Redis stopped: {took}")
    for process in processes:
        assert process.popen.returncode == EXIT_INFRASTRUCTURE, (process.name, process.output())
        assert took[process.name] < LOST_MID_BUILD_LIMIT, (process.name, took)
    for process in processes:
        assert "Traceback" not in process.output(), process.output()
        assert "INTERNALERROR" not in process.output(), process.output()
        errors = [line for line in process.stderr().splitlines() if "error:" in line]
        assert len(errors) == 1 and "lost Redis" in errors[0], process.stderr()


@pytest.mark.slow
def test_redis_silent_for_longer_than_a_socket_timeout_is_ridden_out(
    stopped_redis: ControlledRedis, tmp_path: Path
) -> None:
    """A Redis that stalls (a fork, a loaded host) for 3 s, beyond one socket timeout and
    within the retry budget, is not a lost one: the build completes."""
    processes = start_build(stopped_redis, tmp_path, "stalled")
    assert stopped_redis.process is not None
    stopped_redis.process.send_signal(signal.SIGSTOP)
    time.sleep(defaults.SOCKET_TIMEOUT + 1)
    stopped_redis.process.send_signal(signal.SIGCONT)
    wait_all(processes, time.monotonic())
    for process in processes:
        assert process.popen.returncode == 0, (process.name, process.output())
        assert "Traceback" not in process.output(), process.output()
    cases = ET.parse(tmp_path / "merged.xml").getroot().iter("testcase")
    assert len(list(cases)) == 400


# Error replies (out of memory, no script permission): tests/e2e/test_redis_refusals.py.
