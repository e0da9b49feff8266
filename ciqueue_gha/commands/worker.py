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
from ..fallback.delivery import Delivery
from ..fallback.options import worker_fallback_options
from ..fallback.reason import fallback_reason
from ..fallback.worker import run_share
from ..github.log import RunnerLog
from ..options import pytest_args, queue_settings
from ..plugin.session import exit_code, start_session, worker_options


@click.command("worker", context_settings={"ignore_unknown_options": True})
@worker_options
@worker_fallback_options
@click.argument("pytest_arguments", nargs=-1, type=click.UNPROCESSED)
def worker_command(
    build: BuildOptions,
    worker_id: str | None,
    junit_xml: Path | None,
    unit: str,
    durations_file: Path | None,
    quarantine: Path | None,
    queue_init_timeout: float,
    fallback: str,
    worker_index: int,
    worker_total: int,
    results_dir: Path | None,
    pytest_arguments: tuple[str, ...],
    **queue: Any,
) -> None:
    """Pull tests from the queue and run them, until none are left.

    Everything after -- is the pytest command line (a leading `pytest` may be left out).
    """
    args = pytest_args(pytest_arguments)
    if reason := fallback_reason(build, fallback):  # no Redis: a fixed share, no queue
        delivery = Delivery(worker_index, worker_total, worker_id or str(worker_index), [])
        settings = queue_settings(**queue)
        where = {"durations_file": durations_file, "results_dir": results_dir}
        raise SystemExit(
            run_share(reason, build, delivery, settings, unit, junit_xml, args, **where)
        )
    session = start_session(build, worker_id, unit, durations_file, quarantine=quarantine, **queue)
    if junit_xml:
        args += [f"--junitxml={junit_xml}"]
    try:
        with RunnerLog().verbatim():
            code = pytest.main(args, plugins=[session.plugin])
    finally:
        session.close()
    raise SystemExit(exit_code(session.plugin, code))
