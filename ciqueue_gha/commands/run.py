"""`ciqueue-gha run --workers N -- PYTEST_ARGS`: the whole build on one machine.

Starts a private Redis (unless --redis-url is given), N worker processes and the summary,
and cleans up after itself, on Ctrl-C and SIGTERM too. The Redis URL reaches the workers
on an inherited pipe (secrets.py), never their environment or command line, and no secret
variable of this process reaches them.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import EXIT_INCOMPLETE, QueueNeverPopulated
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..options import (
    Target,
    connection_options,
    durations_option,
    github_options,
    merged_junit_option,
    queue_init_option,
    queue_options,
    queue_settings,
    supervisor_options,
    whole,
)
from ..redis_server import PrivateRedis
from ..secrets import SECRET_VARIABLES, SECRETS_FD, secrets_pipe

if TYPE_CHECKING:
    import redis

#: Seconds a worker gets to finish after SIGTERM before it is killed.
STOP_GRACE = 5.0


def _worker_argv(
    index: int, queue: dict[str, Any], pytest_arguments: tuple[str, ...], log_dir: Path | None
) -> list[str]:
    argv = [sys.executable, "-m", "ciqueue_gha.cli", "worker", "--worker-id", f"worker-{index}"]
    for name, value in queue.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    if log_dir is not None:  # kept: each worker's own JUnit is worth writing
        argv += ["--junit-xml", str(log_dir / f"worker-{index}.xml")]
    return [*argv, "--", *pytest_arguments]


class WorkerProcesses:
    """The worker processes of a local run, each in its own process group, each handed
    `secrets` on a pipe of its own and none in `env`."""

    def __init__(
        self,
        argvs: list[list[str]],
        env: dict[str, str],
        log_dir: Path,
        secrets: dict[str, str],
    ) -> None:
        self.logs = [log_dir / f"worker-{index}.log" for index in range(len(argvs))]
        self.processes = []
        env = {name: value for name, value in env.items() if name not in SECRET_VARIABLES}
        for argv, log in zip(argvs, self.logs, strict=True):
            pipe = secrets_pipe(secrets)
            try:
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        argv,
                        env={**env, SECRETS_FD: str(pipe)},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        pass_fds=(pipe,),
                    )
            finally:
                os.close(pipe)
            self.processes.append(process)

    def all_exited(self) -> bool:
        return all(process.poll() is not None for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        self.wait(STOP_GRACE)
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait(self, timeout: float) -> None:
        """Give the workers up to `timeout` seconds to exit on their own."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            wait_exit(process, max(0.0, deadline - time.monotonic()))

    def exit_codes(self) -> list[int]:
        return [process.wait() for process in self.processes]

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name} ---\n" + "\n".join(text))
        return "\n".join(tails)

    def show_log_tails(self) -> None:
        """The end of each worker's output on stderr: the tests' words, which a runner
        reading this log must not take for commands (github/log.py)."""
        RunnerLog(err=True).text(self.log_tails())


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to `timeout` seconds for `process` to exit, and notice at once when it does
    (`Popen.wait` with a timeout polls, up to 50 ms late)."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux, or already reaped
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    process.poll()


def _connect(target: Target) -> redis.Redis:
    """A checked client for the build's Redis (Redis's client library is loaded only now)."""
    from ..connection import check_server, connect

    client = connect(target.redis_url, verify_tls=target.verify_tls)
    check_server(client, target.redis_url)
    return client


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (`kill`, `timeout`, a cancelled CI job) stop the run as Ctrl-C does, so the
    workers (each in a session of its own) and the private Redis are stopped with it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option(
    "--workers",
    envvar="CIQUEUE_WORKERS",
    show_envvar=True,
    type=whole(1, 256),
    default=min(os.cpu_count() or 1, 256),
    show_default="number of CPUs",
    help="Worker processes to start.",
)
@connection_options
@queue_options
@queue_init_option
@durations_option
@supervisor_options
@merged_junit_option
@github_options
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep each worker's pytest output and JUnit here (default: the output only, in a "
    "temporary folder).",
)
@click.argument("pytest_arguments", nargs=-1, type=click.UNPROCESSED)
def run_command(
    workers: int,
    redis_url: str | None,
    insecure_tls: bool,
    build_id: str | None,
    attempt: int | None,
    queue_init_timeout: float,
    durations_file: Path | None,
    report_timeout: float,
    inactive_workers_timeout: float,
    junit_xml: Path,
    github_token: str | None,
    check_name: str,
    log_dir: Path | None,
    pytest_arguments: tuple[str, ...],
    **queue: Any,
) -> None:
    """Run the suite over N local workers, with a private Redis, and report the result.

    Everything after -- is the pytest command line (a leading `pytest` may be left out).
    """
    interrupt_on_sigterm()
    queue_settings(**queue)  # options that disagree: one line now, not one per worker
    with ExitStack() as stack:
        # The workers start while the private Redis does, and the summary's libraries load
        # while the workers start: each is start-up time the whole build waits for.
        private = None
        if not redis_url:
            private = PrivateRedis()
            private.launch()
            stack.callback(private.stop)
            redis_url = private.url
        build_id = build_id or GitHubEnv.from_environ().run_id or f"local-{uuid.uuid4().hex[:12]}"
        target = Target.resolve(redis_url, insecure_tls, build_id, attempt)
        # A given Redis is checked before any worker starts on a wrong URL.
        client = _connect(target) if private is None else None
        kept = log_dir
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ciqueue-")))
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(CIQUEUE_BUILD_ID=target.keys.build_id, CIQUEUE_ATTEMPT=str(target.keys.attempt))
        if durations_file:
            queue["durations_file"] = durations_file
        queue["insecure_tls"] = insecure_tls
        argvs = [_worker_argv(i, queue, pytest_arguments, kept) for i in range(workers)]
        processes = WorkerProcesses(argvs, env, log_dir, {"CIQUEUE_REDIS_URL": target.redis_url})
        stack.callback(processes.stop)
        click.echo(f"ciqueue-gha: build {build_id}: {workers} workers; logs in {log_dir}", err=True)
        from .summary import summarize

        if private is not None:
            private.wait_ready()
        client = client if client is not None else _connect(target)
        try:
            code = summarize(
                client,
                target,
                report_timeout=report_timeout,
                inactive_workers_timeout=inactive_workers_timeout,
                queue_init_timeout=queue_init_timeout,
                junit_xml=junit_xml,
                durations_file=durations_file,
                github_token=github_token,
                check_name=check_name,
                workers_gone=processes.all_exited,
            )
        except QueueNeverPopulated:
            # Every worker exited before queueing anything: their own words say why.
            processes.show_log_tails()
            codes = processes.exit_codes()
            click.echo(
                "ciqueue-gha: error: every worker exited before queueing a test "
                f"(exit codes {', '.join(map(str, codes))}); their output is above",
                err=True,
            )
            raise SystemExit(max(codes) if max(codes) > 0 else EXIT_INCOMPLETE) from None
        # The queue is done with them, their pytest sessions are not: let each end its own
        # session (its output and JUnit complete) before the rest are stopped.
        processes.wait(STOP_GRACE)
        if code != 0:
            processes.show_log_tails()
        raise SystemExit(code)
