"""`ciqueue-gha worker -- PYTEST_ARGS`: one worker of a build, pytest in this process.

The process holds no secret in its environment or command line (cli.py hands them over on a
pipe first, secrets.py), and under a runner the pytest session's output, which the tests
control, is a block of the log the runner runs no command from (github/log.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from ..config import BuildOptions
from ..github.log import RunnerLog
from ..options import pytest_args
from ..plugin.session import exit_code, start_session, worker_options


@click.command("worker", context_settings={"ignore_unknown_options": True})
@worker_options
@click.argument("pytest_arguments", nargs=-1, type=click.UNPROCESSED)
def worker_command(
    build: BuildOptions,
    worker_id: str | None,
    junit_xml: Path | None,
    unit: str,
    durations_file: Path | None,
    quarantine: Path | None,
    queue_init_timeout: float,
    pytest_arguments: tuple[str, ...],
    **queue: Any,
) -> None:
    """Pull tests from the queue and run them, until none are left.

    Everything after -- is the pytest command line (a leading `pytest` may be left out).
    """
    session = start_session(build, worker_id, unit, durations_file, quarantine=quarantine, **queue)
    args = pytest_args(pytest_arguments)
    if junit_xml:
        args += [f"--junitxml={junit_xml}"]
    try:
        with RunnerLog().verbatim():
            code = pytest.main(args, plugins=[session.plugin])
    finally:
        session.close()
    raise SystemExit(exit_code(session.plugin, code))
