"""The options of DESIGN.md §1, shared by the commands; each is also read from CIQUEUE_<NAME>.

GitHub's own variables fill in what is not given: the build id from GITHUB_RUN_ID, the
attempt from GITHUB_RUN_ATTEMPT.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import click

from . import defaults
from .github.env import GitHubEnv
from .protocol.keys import MAX_ATTEMPT
from .queue.settings import QueueSettings
from .secrets import received_default
from .truncate import shown

F = TypeVar("F", bound=Callable[..., Any])


#: The longest any time option may be: a week, beyond any GitHub job (a self-hosted runner's
#: job ends after 5 days). Past it a value is a mistake (``1e12``), not a wish.
MAX_SECONDS = 7 * 24 * 3600.0

#: A lease timeout outside this range is a mistake: below it heartbeats cannot keep up with
#: a round trip to Redis, above it a dead worker holds its test for more than a day.
LEASE_TIMEOUT_RANGE = (0.1, 24 * 3600.0)

#: Most times one failed test may be requeued, and the largest failure cap taken.
MAX_REQUEUES = 1000
MAX_FAILURES = 10**9

#: Most runs --repeat-new asks of a new test.
MAX_REPEATS = 100

#: Longest worker id: a host name (253) and a pid fit; a 10 KB one is a mistake.
MAX_WORKER_ID = 256


class Number(click.ParamType):  # type: ignore[type-arg]
    """A finite number from `low` to `high` (above `low` when `above`), whole when `whole`.

    Anything else (``nan``, ``inf``, ``1e12``, ``-1``, a word, 10 KB of text) is a usage error
    naming the option and the range, the value echoed cut (`truncate.shown`).
    """

    def __init__(
        self, low: float, high: float, *, whole: bool = False, above: bool = False, unit: str = ""
    ) -> None:
        self.low, self.high, self.whole, self.above, self.unit = low, high, whole, above, unit
        self.name = "integer" if whole else unit or "number"

    @property
    def range(self) -> str:
        low, high = _plain(self.low), _plain(self.high)
        return f"above {low}, at most {high}" if self.above else f"from {low} to {high}"

    @property
    def allowed(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        unit = f" of {self.unit}" if self.unit else ""
        return f"{kind}{unit} {self.range}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = self._parse(value)
        if number is None or not self._within(number):
            self.fail(f"{shown(value)} is not {self.allowed}", param, ctx)
        return number

    def _parse(self, value: Any) -> float | int | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        try:
            return int(str(value).strip()) if self.whole else float(str(value).strip())
        except ValueError:
            return None

    def _within(self, number: float) -> bool:
        if not math.isfinite(number):  # nan compares false with everything: check it first
            return False
        above_low = number > self.low if self.above else number >= self.low
        return above_low and number <= self.high


def _plain(number: float) -> str:
    """`number` as people write it: 604800, 0.1 (not 6.048e+05)."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def seconds(low: float = 0.0, high: float = MAX_SECONDS, *, above: bool = True) -> Number:
    """A duration option's type: by default above 0 and at most `MAX_SECONDS`."""
    return Number(low, high, above=above, unit="seconds")


def whole(low: int, high: int) -> Number:
    return Number(low, high, whole=True)


class ShortChoice(click.Choice):  # type: ignore[type-arg]
    """`click.Choice` whose message echoes a bad value cut (`truncate.shown`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            choices = ", ".join(map(str, self.choices))
            self.fail(f"{shown(value)} is not one of {choices}", param, ctx)


class ShortBool(click.types.BoolParamType):
    """click's boolean (a flag's value from its environment variable), echoing a bad value
    cut (`truncate.shown`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{shown(value)} is not a boolean: use true or false", param, ctx)


class WorkerIdType(click.ParamType):  # type: ignore[type-arg]
    """A worker id: 1 to `MAX_WORKER_ID` characters, no control characters (it is a key field
    and a word of one-line messages)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not 0 < len(text) <= MAX_WORKER_ID or any(ord(c) < 32 or ord(c) == 127 for c in text):
            self.fail(
                f"{shown(text)} is not a worker id: use 1 to {MAX_WORKER_ID} printable characters",
                param,
                ctx,
            )
        return text


def _option(*names: str, **kwargs: Any) -> Callable[[F], F]:
    """An option also read from CIQUEUE_<NAME> (``--lease-timeout``: CIQUEUE_LEASE_TIMEOUT)."""
    kind = kwargs.get("type")
    if isinstance(kind, Number):
        kwargs["help"] = f"{kwargs['help']} Range: {kind.range}."
    env = "CIQUEUE_" + names[0].lstrip("-").replace("-", "_").upper()
    return click.option(*names, envvar=env, show_envvar=True, **kwargs)


def _seconds_option(name: str, default: float, help: str) -> Callable[[F], F]:
    return _option(name, type=seconds(), default=default, show_default=True, help=help)


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying `decorators` so that options list in the order given."""

    def apply(func: F) -> F:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return apply


def redis_url_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """``--redis-url``; when `required`, none given is click's "missing option", else the
    command says what is missing itself (`config.BuildOptions`)."""
    return _option(
        "--redis-url",
        default=received_default("CIQUEUE_REDIS_URL", option="--redis-url" if required else ""),
        required=required,
        help=help,
    )


def insecure_tls_option(help: str) -> Callable[[F], F]:
    return _option("--insecure-tls", is_flag=True, type=ShortBool(), help=help)


def build_id_option(help: str) -> Callable[[F], F]:
    return _option("--build-id", help=help)


def worker_id_option(help: str) -> Callable[[F], F]:
    return _option("--worker-id", type=WorkerIdType(), help=help)


def junit_xml_option(help: str, default: Path | None = None) -> Callable[[F], F]:
    given = {} if default is None else {"default": default, "show_default": True}
    return _option(
        "--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help=help, **given
    )


connection_options = _stack(
    redis_url_option("redis://, rediss:// or unix:// URL."),
    insecure_tls_option("Do not verify a rediss:// server's certificate (says so loudly)."),
    build_id_option(
        "Names the queue; every worker and the summary of a run share it. Default: GITHUB_RUN_ID."
    ),
    _option(
        "--attempt",
        type=whole(1, MAX_ATTEMPT),
        help="Attempt of the build (GitHub re-run). Default: GITHUB_RUN_ATTEMPT, else 1.",
    ),
)


# Options of the lease queue: timing, requeues, failure cap, the unit queued.
queue_options = _stack(
    _option(
        "--lease-timeout",
        type=seconds(*LEASE_TIMEOUT_RANGE, above=False),
        default=defaults.LEASE_TIMEOUT,
        show_default=True,
        help="Seconds without a heartbeat after which another worker takes a test over.",
    ),
    _option(
        "--heartbeat-interval",
        type=seconds(high=LEASE_TIMEOUT_RANGE[1]),
        help="Seconds between heartbeats. Default: lease timeout / 5.",
    ),
    _option(
        "--max-test-duration",
        type=seconds(),
        help="After this long a test stops heartbeating, so a hung test is reclaimed. "
        "Default: 10 x lease timeout.",
    ),
    _option(
        "--max-requeues",
        type=whole(0, MAX_REQUEUES),
        default=0,
        show_default=True,
        help="Times one failed test may be put back in the queue and run again.",
    ),
    _option(
        "--requeue-tolerance",
        type=Number(0, 1),
        default=0.0,
        show_default=True,
        help="Fraction of the suite that may be requeued in all.",
    ),
    _option(
        "--max-failures",
        type=whole(1, MAX_FAILURES),
        help="Stop handing out tests once this many have failed.",
    ),
    _option(
        "--max-consecutive-failures",
        type=whole(0, MAX_FAILURES),
        default=defaults.MAX_CONSECUTIVE_FAILURES,
        show_default=True,
        help="Circuit breaker: a worker that fails this many units in a row stops, and "
        "they run on other workers (0: off).",
    ),
    _option(
        "--unit",
        type=ShortChoice(["test", "file"]),
        default="test",
        show_default=True,
        help="Queue single tests, or whole files (keeps module fixtures on one worker).",
    ),
    _option(
        "--repeat-new",
        type=whole(1, MAX_REPEATS),
        default=1,
        show_default=True,
        help="Run each test the repository's history has never seen this many times, as "
        "separate units: a new test failing any run fails the build as new flaky.",
    ),
)


queue_init_option = _seconds_option(
    "--queue-init-timeout",
    defaults.QUEUE_INIT_TIMEOUT,
    "Seconds to wait for the queue to be populated.",
)

progress_option = _seconds_option(
    "--progress-interval",
    defaults.PROGRESS_INTERVAL,
    "Seconds between progress lines in a log (a worker's, the summary's) and between updates "
    "of the live check run.",
)

durations_option = _option(
    "--durations-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON of test durations: read to queue the longest first, written by the "
    "summary. Redis keeps them too.",
)


def _check_quarantine(ctx: click.Context, param: click.Parameter, path: Path | None) -> Any:
    """A quarantine file read at once: a malformed line fails the command before any test
    runs (one line naming the file and line, exit 2)."""
    if path is not None:
        from .trust.quarantine import read_file

        read_file(path)
    return path


quarantine_option = _option(
    "--quarantine",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_check_quarantine,
    help="File of quarantined tests, one test id or glob a line, optionally "
    "'until YYYY-MM-DD' and '# reason': they run and are reported, but never fail the build. "
    "Adds to those `ciqueue-gha quarantine add` keeps.",
)


github_options = _stack(
    click.option(
        "--github-token",
        envvar=["CIQUEUE_GITHUB_TOKEN", "GITHUB_TOKEN"],
        show_envvar=True,
        default=received_default("CIQUEUE_GITHUB_TOKEN", "GITHUB_TOKEN"),
        help="Token for the check run on GitHub (needs `checks: write`); never printed.",
    ),
    _option(
        "--check-name",
        default="ciqueue-gha",
        show_default=True,
        help="Name of the check run on the pull request.",
    ),
)


# The summary's options (`summary`, and `run`, which runs one): `config.ReportOptions`.
report_options = _stack(
    _seconds_option(
        "--report-timeout",
        defaults.REPORT_TIMEOUT,
        "Seconds the summary waits for every test before giving up.",
    ),
    _seconds_option(
        "--inactive-workers-timeout",
        defaults.INACTIVE_WORKERS_TIMEOUT,
        "Seconds the summary waits with no live worker before giving up.",
    ),
    queue_init_option,
    progress_option,
    durations_option,
    quarantine_option,
    junit_xml_option("Where to write the merged JUnit file.", Path("ciqueue-junit.xml")),
    github_options,
)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def durations_namespace(github: GitHubEnv | None = None) -> str:
    """Whose durations these are: the repository on GitHub, else one shared name."""
    repository = (github or GitHubEnv.from_environ()).repository or "default"
    return repository.replace("{", "").replace("}", "")


def queue_settings(**options: Any) -> QueueSettings:
    """The queue's settings from a command's options (the others ignored)."""
    names = {field.name for field in fields(QueueSettings)}
    return QueueSettings(**{name: value for name, value in options.items() if name in names})


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
