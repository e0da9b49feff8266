"""The options the commands share, handed to each as one object, and the one way a command
opens its build: resolve the target, connect, check the server.

As rq's ``pass_cli_config``: `pass_build` adds the connection options (options.py) to a
command and calls it with a `BuildOptions` named ``build`` in their place; `pass_report`
does the same with the summary's options and a `ReportOptions` named ``report_options``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import UsageError
from .github.env import GitHubEnv
from .options import connection_options, report_options
from .protocol.keys import BuildKeys

if TYPE_CHECKING:
    import redis
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
Command = Callable[..., Any]


@dataclass(frozen=True)
class Target:
    """Where the queue is: the Redis URL and the build attempt's keys."""

    redis_url: str
    verify_tls: bool
    keys: BuildKeys

    def open(self) -> redis.Redis:
        """A client for the build's Redis, the server reached and checked (`open_server`)."""
        from .connection import open_server  # Redis's client library is loaded only now

        return open_server(self.redis_url, verify_tls=self.verify_tls).client


@dataclass(frozen=True)
class BuildOptions:
    """A command's connection options: which build, and the Redis its queue is in."""

    redis_url: str | None
    insecure_tls: bool
    build_id: str | None
    attempt: int | None

    def target(self, github: GitHubEnv | None = None) -> Target:
        """The build these options name; GitHub's variables fill in the build id and the
        attempt. `UsageError` when there is no Redis or no build id."""
        if not self.redis_url:
            raise UsageError("no Redis: pass --redis-url or set CIQUEUE_REDIS_URL")
        github = github or GitHubEnv.from_environ()
        build = self.build_id or github.run_id
        if not build:
            raise UsageError("no build id: pass --build-id, or run inside GitHub Actions")
        keys = BuildKeys(build, self.attempt or github.attempt)
        return Target(self.redis_url, not self.insecure_tls, keys)

    def open(self) -> tuple[Target, redis.Redis]:
        """The build's target and a client for its checked server."""
        target = self.target()
        return target, target.open()


@dataclass(frozen=True)
class ReportOptions:
    """How the summary waits for a build and reports it (`summary`, and `run`'s summary)."""

    report_timeout: float
    inactive_workers_timeout: float
    queue_init_timeout: float
    durations_file: Path | None
    quarantine: Path | None
    junit_xml: Path
    github_token: str | None
    check_name: str


class PassOptions(Generic[T]):
    """A click decorator: adds `options` to a command, which is called with their values
    gathered in one `kind` object, the keyword `name`, in their place."""

    def __init__(self, name: str, kind: type[T], options: Callable[[Command], Command]) -> None:
        self.name, self.kind, self.options = name, kind, options

    def __call__(self, command: Command) -> Command:
        @functools.wraps(command)
        def gathered(**params: Any) -> Any:
            return command(**self.gather(params))

        return self.options(gathered)

    def gather(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` (as click parsed them) as the command takes them."""
        names = {field.name for field in fields(self.kind)}
        rest = {name: value for name, value in params.items() if name not in names}
        return {**rest, self.name: self.kind(**{name: params[name] for name in names})}


pass_build = PassOptions("build", BuildOptions, connection_options)
pass_report = PassOptions("report_options", ReportOptions, report_options)
