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
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..config import BuildOptions, ReportOptions, Target, pass_build, pass_report
from ..errors import EXIT_INCOMPLETE, QueueNeverPopulated
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..options import queue_options, queue_settings, whole
from ..redis_server import PrivateRedis
from ..report.warnings import gathered_warnings
from ..secrets import SECRET_VARIABLES, SECRETS_FD, secrets_pipe

if TYPE_CHECKING:
    import redis

    from ..report.build import BuildReport

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
@pass_build
@queue_options
@pass_report
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each worker's pytest output and JUnit here (default: the output only, in a "
    "new temporary folder, kept; the first line names it).",
)
@click.argument("pytest_arguments", nargs=-1, type=click.UNPROCESSED)
def run_command(
    workers: int,
    build: BuildOptions,
    report_options: ReportOptions,
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
        private = None if build.redis_url else _private_redis(stack)
        target = _local_target(build, private)
        # A given Redis is checked before any worker starts on a wrong URL.
        client = target.open() if private is None else None
        logs = _logs(log_dir)
        given = dict(
            queue,
            durations_file=report_options.durations_file,
            insecure_tls=build.insecure_tls,
            progress_interval=report_options.progress_interval,
        )
        argvs = [_worker_argv(i, given, pytest_arguments, log_dir) for i in range(workers)]
        processes = _start_workers(stack, argvs, target, logs)
        started = time.monotonic()
        code, report = _summarize(private, client, target, report_options, processes)
        # The queue is done with them, their pytest sessions are not: let each end its own
        # session (its output and JUnit complete) before the rest are stopped.
        processes.wait(STOP_GRACE)
        _finish(processes, code, report, time.monotonic() - started)
        raise SystemExit(code)


def _finish(
    processes: WorkerProcesses, code: int, report: BuildReport | None, seconds: float
) -> None:
    """The end of the console: the workers' last words on a red build, their warnings
    summaries gathered, and the build's tally as the last line."""
    if code != 0:
        processes.show_log_tails()
    warnings = gathered_warnings([log.read_text(errors="replace") for log in processes.logs])
    if warnings:
        RunnerLog().text(warnings)  # the tests' words
    tally = report.title if report is not None else "no report"
    click.echo(f"ciqueue-gha: {tally} in {seconds:.1f}s (exit {code})")


def _private_redis(stack: ExitStack) -> PrivateRedis:
    """A private Redis launched (not yet ready), stopped when the run ends."""
    private = PrivateRedis()
    private.launch()
    stack.callback(private.stop)
    return private


def _local_target(build: BuildOptions, private: PrivateRedis | None) -> Target:
    """The run's build: on the private Redis when there is one, under a build id of its own
    when neither --build-id nor GitHub gives one."""
    build_id = build.build_id or GitHubEnv.from_environ().run_id or f"local-{uuid.uuid4().hex[:12]}"
    redis_url = private.url if private is not None else build.redis_url
    return replace(build, redis_url=redis_url, build_id=build_id).target()


def _logs(log_dir: Path | None) -> Path:
    """Where the workers' output goes, and stays: `log_dir`, else a new temporary folder (the
    first line names it; the system's cleaning of temporary files removes it in time)."""
    if log_dir is None:
        return Path(tempfile.mkdtemp(prefix="ciqueue-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir


def _start_workers(
    stack: ExitStack, argvs: list[list[str]], target: Target, logs: Path
) -> WorkerProcesses:
    """The worker processes of `target`'s build, stopped when the run ends; the Redis URL
    reaches them on a pipe."""
    env = dict(os.environ)
    env.update(CIQUEUE_BUILD_ID=target.keys.build_id, CIQUEUE_ATTEMPT=str(target.keys.attempt))
    processes = WorkerProcesses(argvs, env, logs, {"CIQUEUE_REDIS_URL": target.redis_url})
    stack.callback(processes.stop)
    click.echo(
        f"ciqueue-gha: build {target.keys.build_id}: {len(argvs)} workers; logs in {logs}",
        err=True,
    )
    return processes


def _summarize(
    private: PrivateRedis | None,
    client: redis.Redis | None,
    target: Target,
    options: ReportOptions,
    processes: WorkerProcesses,
) -> tuple[int, BuildReport | None]:
    """The summary's exit code and report, once the private Redis (if any) is ready; when
    every worker exited before queueing anything, their own words say why."""
    from .summary import summarize  # its libraries load while the private Redis starts

    if private is not None:
        private.wait_ready()
    client = client if client is not None else target.open()
    reports: list[BuildReport] = []
    try:
        code = summarize(
            client, target, options, workers_gone=processes.all_exited, on_report=reports.append
        )
        return code, reports[0] if reports else None
    except QueueNeverPopulated:
        processes.show_log_tails()
        codes = processes.exit_codes()
        click.echo(
            "ciqueue-gha: error: every worker exited before queueing a test "
            f"(exit codes {', '.join(map(str, codes))}); their output is above",
            err=True,
        )
        raise SystemExit(max(codes) if max(codes) > 0 else EXIT_INCOMPLETE) from None
