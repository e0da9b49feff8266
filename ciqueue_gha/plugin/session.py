"""A pytest session started as a queue worker: connected, its worker id claimed, its heartbeat
helper running; and the worker's exit code from what its session did (DESIGN.md §1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import pytest
import redis

from .. import defaults, durations
from ..config import BuildOptions, Target, pass_build
from ..errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_USAGE,
    CiqueueError,
    InfrastructureError,
    UsageError,
)
from ..options import (
    default_worker_id,
    durations_namespace,
    durations_option,
    junit_xml_option,
    progress_option,
    quarantine_option,
    queue_init_option,
    queue_options,
    queue_settings,
    worker_id_option,
)
from ..queue import claim, hang
from ..queue.helper_process import HeartbeatProcess
from ..queue.settings import HelperConfig, QueueSettings
from ..queue.worker import QueueWorker
from ..secrets import Scrubber, take_secrets, url_secrets
from ..trust.quarantine import Quarantine, in_force, read_file
from ..trust.repeat import base_unit, repeating
from .hooks import QueuePlugin

# pytest's exit codes that mean the worker could not do its job, and ours for each.
_PYTEST_EXIT = {
    pytest.ExitCode.INTERRUPTED: EXIT_INCOMPLETE,  # collection errors, Ctrl-C
    pytest.ExitCode.INTERNAL_ERROR: EXIT_INCOMPLETE,
    pytest.ExitCode.USAGE_ERROR: EXIT_USAGE,
}


def worker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds a worker's options to a click command: ``ciqueue-gha worker``'s, which
    ``pytest --ciqueue`` reads from ``CIQUEUE_*`` alone (`start_from_environment`)."""
    for option in (
        junit_xml_option(
            "Write this worker's own results here (the summary writes the merged file)."
        ),
        worker_id_option(
            "Unique per worker within a build; a second live process given an id in use runs "
            "as <id>~2, and the summary says so. Default: host name and pid."
        ),
        durations_option,
        quarantine_option,
        queue_init_option,
        progress_option,
        queue_options,
        pass_build,
    ):
        command = option(command)
    return command


@dataclass
class WorkerSession:
    """A connected queue worker, its heartbeat helper, and the pytest plugin driving both."""

    plugin: QueuePlugin
    heartbeat: HeartbeatProcess
    stack_file: IO[bytes]
    id_claim: claim.Claim | None = None

    def close(self) -> None:
        # A worker that lost Redis has nothing to release, and must not wait for it again.
        lost = isinstance(self.plugin.error, InfrastructureError)
        self.heartbeat.close(at_once=lost)
        if not lost:
            with suppress(redis.RedisError, CiqueueError):  # best effort
                # The two calls overlap (one round trip, not two): release goes out on the
                # scripts' connection, its reply read after the claim's.
                released = self.plugin.worker.send_release()
                if self.id_claim is not None:
                    claim.release(self.plugin.worker.client, self.plugin.worker.keys, self.id_claim)
                released.result()
        self.plugin.worker.close(read_in_flight=not lost)
        self.stack_file.close()
        with suppress(OSError):
            os.unlink(self.stack_file.name)


def start_session(
    build: BuildOptions,
    worker_id: str | None,
    unit: str,
    durations_file: Path | None,
    progress_interval: float = defaults.PROGRESS_INTERVAL,
    repeat_new: int = 1,
    quarantine: Path | None = None,
    **queue: Any,
) -> WorkerSession:
    """Connect, check the server, start the heartbeat helper; the options are the command's."""
    target = build.target()
    settings = queue_settings(**queue)
    if repeat_new > 1 and unit != "test":
        raise UsageError("--repeat-new repeats single tests: it needs --unit test")
    client = target.open()
    held = _claim_worker_id(client, target, worker_id, settings)
    worker = QueueWorker(client, target.keys, held.worker_id, settings)
    known = durations.load_redis(client, durations_namespace())
    if durations_file:
        known.update(durations.load_file(durations_file))
    stack_file = hang.arm()
    heartbeat = _start_helper(target, held, settings, stack_file.name)
    plugin = QueuePlugin(
        worker,
        heartbeat,
        unit=unit,
        order=_order(client, target, known, repeat_new),
        durations=known,
        progress_every=progress_interval,
    )
    plugin.excused = _quarantined(client, quarantine)
    # Tests learn which worker and build run them, and never see a secret: pytest's
    # assertion introspection would print os.environ into the report.
    os.environ.update(CIQUEUE_WORKER_ID=held.worker_id, CIQUEUE_BUILD_ID=target.keys.build_id)
    plugin.scrub = Scrubber([*url_secrets(target.redis_url), *take_secrets()])
    return WorkerSession(plugin, heartbeat, stack_file, held)


def _order(
    client: redis.Redis, target: Target, known: dict[str, float], repeat_new: int
) -> Callable[[list[str]], list[str]]:
    """How the leader queues the units: longest first, then the repeats of new tests."""

    def longest_first(units: list[str]) -> list[str]:
        return durations.order_by_duration(units, known)

    if repeat_new == 1:
        return longest_first
    namespace, build = durations_namespace(), target.keys.build_id
    return repeating(client, namespace, build, repeat_new, longest_first)


def _quarantined(client: redis.Redis, path: Path | None) -> Callable[[str], bool]:
    """Whether a unit's failure is excused by the quarantine (the file at `path` and the
    entries Redis keeps), as the summary excuses it: the worker's job is not failed by it.
    The file is read now (a malformed line is exit 2 before anything runs); Redis's entries
    when a failure first asks (a green worker spends no round trip on them), and a Redis
    that cannot say excuses nothing."""
    entries = read_file(path) if path else []
    quarantine: list[Quarantine] = []

    def excused(unit: str) -> bool:
        if not quarantine:
            try:
                quarantine.append(in_force(client, durations_namespace(), None, entries))
            except (redis.RedisError, CiqueueError):
                return False
        return quarantine[0].holding(base_unit(unit)) is not None

    return excused


def start_from_environment() -> WorkerSession:
    """`start_session` with the options ``ciqueue-gha worker`` would read from ``CIQUEUE_*``
    and no command line (``pytest --ciqueue``)."""
    command = click.command("worker")(worker_options(_no_call))
    params = command.make_context("worker", []).params
    unused = ("junit_xml", "queue_init_timeout")  # pytest's own options and session do these
    return start_session(**pass_build.gather({k: v for k, v in params.items() if k not in unused}))


def _no_call(**params: Any) -> None:
    """The command `start_from_environment` parses options with and never runs."""


def _claim_worker_id(
    client: redis.Redis, target: Target, worker_id: str | None, settings: QueueSettings
) -> claim.Claim:
    """Claim `worker_id` (or the default) for this process; say so when it was in use."""
    held = claim.claim(
        client, target.keys, worker_id or default_worker_id(), settings.lease_timeout
    )
    if held.collided:
        click.echo(
            f"ciqueue-gha: WARNING: worker id {held.asked} is in use by another live "
            f"process of this build: this one runs as {held.worker_id}",
            err=True,
        )
    return held


def _start_helper(
    target: Target, held: claim.Claim, settings: QueueSettings, stack_file: str
) -> HeartbeatProcess:
    """The heartbeat helper of worker `held.worker_id`."""
    return HeartbeatProcess(
        HelperConfig(
            redis_url=target.redis_url,
            verify_tls=target.verify_tls,
            build_id=target.keys.build_id,
            attempt=target.keys.attempt,
            worker_id=held.worker_id,
            lease_timeout=settings.lease_timeout,
            heartbeat_interval=settings.heartbeat_every,
            max_test_duration=settings.heartbeat_for,
            claim_token=held.token,
            stack_file=stack_file,
        )
    )


def exit_code(plugin: QueuePlugin, pytest_code: int | pytest.ExitCode) -> int:
    """The worker's exit code (DESIGN.md §1) from what its tests did and what pytest said."""
    if plugin.error is not None:
        raise plugin.error
    if plugin.collection_interrupted:  # as plain pytest: collection errors, no test run
        return EXIT_INTERRUPTED
    if pytest_code in _PYTEST_EXIT:
        return _PYTEST_EXIT[pytest.ExitCode(pytest_code)]
    failed = [unit for unit in plugin.tally.final_failures if not plugin.excused(unit)]
    if failed or plugin.tally.stopped or plugin.collection_failed:
        return EXIT_FAILED
    return EXIT_PASSED
