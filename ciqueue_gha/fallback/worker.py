"""A `worker` without the queue: why it falls back, and running its share (DESIGN.md §1).

It says so loudly, first (one line, a warning annotation on GitHub Actions); runs pytest with
the fallback plugin; then delivers its results (delivery.py) and writes its JUnit file, and
exits as a queue worker would: 0 passed, 1 failed, 2 collection errors stopped it, 3 its
session broke off.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from .. import durations as durations_
from ..config import BuildOptions
from ..errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_USAGE,
    UsageError,
)
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..queue.settings import QueueSettings
from ..report.build import BuildReport
from ..report.junit import write_junit
from ..secrets import Scrubber, take_secrets, url_secrets
from .delivery import RESULTS_DIR, SUITE_NAME, Delivery
from .merge import build_record, collection_record
from .plugin import FallbackPlugin
from .reason import announce

# pytest's exit codes that mean the worker could not do its job, and ours for each.
_PYTEST_EXIT = {
    pytest.ExitCode.INTERRUPTED: EXIT_INCOMPLETE,
    pytest.ExitCode.INTERNAL_ERROR: EXIT_INCOMPLETE,
    pytest.ExitCode.USAGE_ERROR: EXIT_USAGE,
}


def run_share(
    reason: str,
    build: BuildOptions,
    delivery: Delivery,
    settings: QueueSettings,
    unit: str,
    junit_xml: Path | None,
    args: list[str],
    *,
    durations_file: Path | None,
    results_dir: Path | None,
) -> int:
    """Run worker `delivery.index`'s share with pytest in this process; its exit code."""
    if delivery.index >= delivery.total:
        raise UsageError(
            f"--worker-index {delivery.index} is not below --worker-total {delivery.total}"
        )
    known = durations_.load_file(durations_file) if durations_file else {}
    order = "longest first from recorded durations" if known else "whole files, no durations"
    announce(
        f"static fallback ({reason}): worker {delivery.index} of {delivery.total} runs a fixed "
        f"share of the suite ({order}); failed tests are requeued within this worker only"
    )
    scrub = Scrubber([*url_secrets(build.redis_url or ""), *take_secrets()])
    plugin = FallbackPlugin(delivery, settings, unit=unit, durations=known, scrub=scrub)
    os.environ["CIQUEUE_WORKER_ID"] = delivery.worker  # as under the queue
    build_id = build.build_id or GitHubEnv.from_environ().run_id
    if build_id:
        os.environ["CIQUEUE_BUILD_ID"] = build_id
    with RunnerLog().verbatim():
        code = pytest.main(args, plugins=[plugin])
    report = deliver(delivery, results_dir or RESULTS_DIR, junit_xml)
    return worker_exit_code(delivery, report, code)


def deliver(delivery: Delivery, folder: Path, junit_xml: Path | None) -> BuildReport:
    """Write the delivery and the worker's JUnit file, say where; the share's report."""
    path = delivery.write(folder)
    junit = junit_xml or folder / path.with_suffix(".xml").name
    share = delivery.shares[delivery.index] if delivery.shares else []
    report = BuildReport.from_records(
        [build_record([delivery], share)], collection_record([delivery])
    )
    write_junit(report, junit, SUITE_NAME)
    click.echo(
        f"ciqueue-gha: WITHOUT THE QUEUE: worker {delivery.index} of {delivery.total}: "
        f"{report.title} of its share; delivered {path}, JUnit {junit}",
        err=True,
    )
    return report


def worker_exit_code(delivery: Delivery, report: BuildReport, pytest_code: int) -> int:
    """As a queue worker's: collection errors 2, a broken session 3, failures 1, else 0."""
    if delivery.interrupted:
        return EXIT_INTERRUPTED
    if pytest_code in _PYTEST_EXIT:
        return _PYTEST_EXIT[pytest.ExitCode(pytest_code)]
    if report.failures or delivery.stopped:
        return EXIT_FAILED
    return EXIT_PASSED
