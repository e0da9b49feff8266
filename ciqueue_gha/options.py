"""The options of DESIGN.md §1, shared by the commands; each is also read from CIQUEUE_<NAME>.

GitHub's own variables fill in what is not given: the build id from GITHUB_RUN_ID, the
attempt from GITHUB_RUN_ATTEMPT.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from . import defaults
from .errors import UsageError
from .github.env import GitHubEnv
from .keys import BuildKeys
from .queue.settings import QueueSettings

F = TypeVar("F", bound=Callable[..., Any])


def _option(*names: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*names, envvar=f"CIQUEUE_{env}", show_envvar=True, **kwargs)


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying `decorators` so that options list in the order given."""

    def apply(func: F) -> F:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return apply


connection_options = _stack(
    _option("--redis-url", env="REDIS_URL", help="redis://, rediss:// or unix:// URL."),
    _option(
        "--insecure-tls",
        env="INSECURE_TLS",
        is_flag=True,
        help="Do not verify a rediss:// server's certificate (says so loudly).",
    ),
    _option(
        "--build-id",
        env="BUILD_ID",
        help="Names the queue; every worker and the summary of a run share it. "
        "Default: GITHUB_RUN_ID.",
    ),
    _option(
        "--attempt",
        env="ATTEMPT",
        type=click.IntRange(min=1),
        help="Attempt of the build (GitHub re-run). Default: GITHUB_RUN_ATTEMPT, else 1.",
    ),
)


# Options of the lease queue: timing, requeues, failure cap, the unit queued.
queue_options = _stack(
    _option(
        "--lease-timeout",
        env="LEASE_TIMEOUT",
        type=float,
        default=defaults.LEASE_TIMEOUT,
        show_default=True,
        help="Seconds without a heartbeat after which another worker takes a test over.",
    ),
    _option(
        "--heartbeat-interval",
        env="HEARTBEAT_INTERVAL",
        type=float,
        help="Seconds between heartbeats. Default: lease timeout / 5.",
    ),
    _option(
        "--max-test-duration",
        env="MAX_TEST_DURATION",
        type=float,
        help="After this long a test stops heartbeating, so a hung test is reclaimed. "
        "Default: 10 x lease timeout.",
    ),
    _option(
        "--max-requeues",
        env="MAX_REQUEUES",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Times one failed test may be put back in the queue and run again.",
    ),
    _option(
        "--requeue-tolerance",
        env="REQUEUE_TOLERANCE",
        type=click.FloatRange(0, 1),
        default=0.0,
        show_default=True,
        help="Fraction of the suite that may be requeued in all.",
    ),
    _option(
        "--max-failures",
        env="MAX_FAILURES",
        type=click.IntRange(min=1),
        help="Stop handing out tests once this many have failed.",
    ),
    _option(
        "--unit",
        env="UNIT",
        type=click.Choice(["test", "file"]),
        default="test",
        show_default=True,
        help="Queue single tests, or whole files (keeps module fixtures on one worker).",
    ),
)


queue_init_option = _option(
    "--queue-init-timeout",
    env="QUEUE_INIT_TIMEOUT",
    type=float,
    default=defaults.QUEUE_INIT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the queue to be populated.",
)

durations_option = _option(
    "--durations-file",
    env="DURATIONS_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON of test durations: read to queue the longest first, written by the "
    "summary. Redis keeps them too.",
)


supervisor_options = _stack(
    _option(
        "--report-timeout",
        env="REPORT_TIMEOUT",
        type=float,
        default=defaults.REPORT_TIMEOUT,
        show_default=True,
        help="Seconds the summary waits for every test before giving up.",
    ),
    _option(
        "--inactive-workers-timeout",
        env="INACTIVE_WORKERS_TIMEOUT",
        type=float,
        default=defaults.INACTIVE_WORKERS_TIMEOUT,
        show_default=True,
        help="Seconds the summary waits with no live worker before giving up.",
    ),
)


github_options = _stack(
    click.option(
        "--github-token",
        envvar=["CIQUEUE_GITHUB_TOKEN", "GITHUB_TOKEN"],
        show_envvar=True,
        help="Token for the check run on GitHub (needs `checks: write`); never printed.",
    ),
    _option(
        "--check-name",
        env="CHECK_NAME",
        default="ciqueue-gha",
        show_default=True,
        help="Name of the check run on the pull request.",
    ),
)


@dataclass(frozen=True)
class Target:
    """Where the queue is: the Redis URL and the build attempt's keys."""

    redis_url: str
    verify_tls: bool
    keys: BuildKeys

    @classmethod
    def resolve(
        cls,
        redis_url: str | None,
        insecure_tls: bool,
        build_id: str | None,
        attempt: int | None,
        github: GitHubEnv | None = None,
    ) -> Target:
        if not redis_url:
            raise UsageError("no Redis: pass --redis-url or set CIQUEUE_REDIS_URL")
        github = github or GitHubEnv.from_environ()
        build = build_id or github.run_id
        if not build:
            raise UsageError("no build id: pass --build-id, or run inside GitHub Actions")
        return cls(redis_url, not insecure_tls, BuildKeys(build, attempt or github.attempt))


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def durations_namespace(github: GitHubEnv | None = None) -> str:
    """Whose durations these are: the repository on GitHub, else one shared name."""
    repository = (github or GitHubEnv.from_environ()).repository or "default"
    return repository.replace("{", "").replace("}", "")


def queue_settings(
    lease_timeout: float,
    heartbeat_interval: float | None,
    max_test_duration: float | None,
    max_requeues: int,
    requeue_tolerance: float,
    max_failures: int | None,
    **_: Any,
) -> QueueSettings:
    return QueueSettings(
        lease_timeout=lease_timeout,
        heartbeat_interval=heartbeat_interval,
        max_test_duration=max_test_duration,
        max_requeues=max_requeues,
        requeue_tolerance=requeue_tolerance,
        max_failures=max_failures,
    )


PYTEST_PREFIXES = (
    ["pytest"],
    ["py.test"],
    ["python", "-m", "pytest"],
    ["python3", "-m", "pytest"],
)


def pytest_args(args: tuple[str, ...] | list[str]) -> list[str]:
    """The pytest command line after ``--``, with a leading ``pytest`` (or ``python -m pytest``)
    dropped: ``-- pytest -q tests/`` and ``-- -q tests/`` mean the same."""
    args = list(args)
    for prefix in PYTEST_PREFIXES:
        if args[: len(prefix)] == prefix:
            return args[len(prefix) :]
    return args


merged_junit_option = click.option(
    "--junit-xml",
    envvar="CIQUEUE_JUNIT_XML",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("ciqueue-junit.xml"),
    show_default=True,
    help="Where to write the merged JUnit file.",
)
