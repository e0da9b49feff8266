"""`ciqueue-gha queue populate | status`: fill a build's queue from a list, and look at it.

`populate` elects a leader exactly as a worker does, so a list can be queued ahead of the
workers (or by a script that is not pytest); `status` prints what the supervisor sees.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TextIO

import click

from ..config import BuildOptions, pass_build
from ..errors import UsageError
from ..options import default_worker_id, worker_id_option
from ..protocol.keys import BuildKeys
from ..queue.collection import record_collection
from ..queue.retry import populate_attempt
from ..queue.supervisor import QueueStatus, Supervisor
from ..queue.worker import QueueWorker


@click.group("queue")
def queue_command() -> None:
    """Populate the queue of a build and look at it."""


@queue_command.command("populate")
@pass_build
@click.option(
    "--tests-file",
    envvar="CIQUEUE_TESTS_FILE",
    show_envvar=True,
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="The tests to queue, one test id per line; '-' reads stdin.",
)
@worker_id_option(
    "Who populates; a retry under the same id is recognised. Default: host name and pid."
)
def populate_command(build: BuildOptions, tests_file: TextIO, worker_id: str | None) -> None:
    """Queue the build's tests: the first caller is the leader and pushes them, others follow.

    Prints the role this call got and how many tests the queue holds.
    """
    target = build.target()
    tests = read_tests(tests_file)
    client = target.open()
    worker = QueueWorker(client, target.keys, worker_id or default_worker_id())
    # A list collects nothing but tests: an empty collection record, as a worker leaves one.
    record_collection(client, target.keys, worker.worker_id, [], interrupted=False)
    # Attempt N > 1 queues what its retry plan names, as a worker would (queue/retry.py).
    tests, population = populate_attempt(
        worker, tests, lambda line: click.echo(f"ciqueue-gha: {line}", err=True)
    )
    role = "leader" if population.leader else "follower"
    keys = target.keys
    click.echo(f"{role}: build {keys.build_id} attempt {keys.attempt}: {population.total} tests")
    if not population.matches:
        click.echo(
            f"ciqueue-gha: WARNING: these {len(tests)} tests are not the "
            f"{population.total} tests the leader queued",
            err=True,
        )


def read_tests(stream: TextIO) -> list[str]:
    """Test ids, one a line, blank lines skipped; `UsageError` when none, or one repeats."""
    name = getattr(stream, "name", "the tests file")
    try:
        tests = [line.strip() for line in stream if line.strip()]
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not UTF-8 text") from None
    if not tests:
        raise UsageError(f"no tests to queue: the test list in {name} is empty")
    seen: set[str] = set()
    for test in tests:
        if test in seen:
            raise UsageError(f"the test list in {name} names {test!r} twice")
        seen.add(test)
    return tests


@queue_command.command("status")
@pass_build
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def status_command(build: BuildOptions, as_json: bool) -> None:
    """Print what the supervisor sees of the build's queue."""
    target, client = build.open()
    status = Supervisor(client, target.keys).status()
    if as_json:
        click.echo(json.dumps({**asdict(status), "exhausted": status.exhausted}))
    else:
        click.echo(format_status(target.keys, status))


def format_status(keys: BuildKeys, status: QueueStatus) -> str:
    """The status as a person reads it: the state, the counts, the last sign of a worker."""
    if not status.ready:
        state = "not populated"
    else:
        state = "exhausted" if status.exhausted else "in progress"
    seen = (
        f"last worker seen {status.since_seen_ms / 1000:.1f} s ago"
        if status.since_seen_ms >= 0
        else "no worker seen yet"
    )
    return (
        f"build {keys.build_id} attempt {keys.attempt}: {state}\n"
        f"total {status.total}, queued {status.queued}, "
        f"running {status.running} ({status.alive_leases} with a live lease), "
        f"finalized {status.finalized} ({status.failed} failed)\n"
        f"{seen}"
    )
