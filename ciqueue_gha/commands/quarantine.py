"""`ciqueue-gha quarantine add | remove | list`: the quarantine kept in Redis per repository,
which every build's summary applies together with its ``--quarantine`` file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import redis

from ..errors import UsageError
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..options import durations_namespace, insecure_tls_option, redis_url_option
from ..protocol.keys import quarantine_key
from ..trust.quarantine import Entry, add_redis, load_redis, parse_date, remove_redis


def repository_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The Redis to use and whose tests: the repository's, as the summary keeps them."""
    for option in (
        click.option(
            "--repository",
            envvar="CIQUEUE_REPOSITORY",
            show_envvar=True,
            help="Whose tests (owner/name). Default: GITHUB_REPOSITORY, else 'default', as "
            "the summary names them.",
        ),
        insecure_tls_option("Do not verify a rediss:// server's certificate (says so loudly)."),
        redis_url_option(
            "redis://, rediss:// or unix:// URL of the Redis builds use.", required=True
        ),
    ):
        command = option(command)
    return command


def open_repository(
    redis_url: str, insecure_tls: bool, repository: str | None
) -> tuple[redis.Redis, str]:
    """A client for the checked server (on a cluster, the namespace's master), and the
    namespace of `repository`'s tests."""
    from ..cluster import on_slot, slot_of
    from ..connection import open_server

    namespace = durations_namespace(GitHubEnv(repository=repository) if repository else None)
    server = open_server(redis_url, verify_tls=not insecure_tls)
    slot = slot_of(quarantine_key(namespace))
    return on_slot(server.client, redis_url, slot, cluster=server.cluster), namespace


@click.group("quarantine")
def quarantine_command() -> None:
    """Quarantine tests for every build of a repository: they run, are reported, and never
    fail the build."""


@quarantine_command.command("add")
@repository_options
@click.argument("patterns", nargs=-1, required=True)
@click.option("--until", "until", help="Last day the entries apply (YYYY-MM-DD, UTC).")
@click.option("--reason", default="", help="Why: shown beside each quarantined failure.")
def add_command(
    redis_url: str,
    insecure_tls: bool,
    repository: str | None,
    patterns: tuple[str, ...],
    until: str | None,
    reason: str,
) -> None:
    """Quarantine each of PATTERNS (a test id or a glob); an entry already kept is replaced."""
    try:
        day = parse_date(until) if until else None
    except ValueError as exc:
        raise UsageError(f"--until: {exc}") from None
    if any(not p or p.startswith("#") or any(c.isspace() for c in p) for p in patterns):
        raise UsageError("a pattern is a test id or a glob: one word, not starting with '#'")
    client, namespace = open_repository(redis_url, insecure_tls, repository)
    entries = [Entry(pattern, day, " ".join(reason.split())) for pattern in patterns]
    add_redis(client, namespace, entries)
    RunnerLog().text("\n".join(f"quarantined: {entry.line()}" for entry in entries))


@quarantine_command.command("remove")
@repository_options
@click.argument("patterns", nargs=-1, required=True)
def remove_command(
    redis_url: str, insecure_tls: bool, repository: str | None, patterns: tuple[str, ...]
) -> None:
    """Remove PATTERNS from the kept quarantine (exit 1 when one was not there)."""
    client, namespace = open_repository(redis_url, insecure_tls, repository)
    removed = remove_redis(client, namespace, patterns)
    click.echo(f"removed {removed} of {len(patterns)} entries")
    if removed < len(patterns):
        raise SystemExit(1)


@quarantine_command.command("list")
@repository_options
def list_command(redis_url: str, insecure_tls: bool, repository: str | None) -> None:
    """Print the kept quarantine as a quarantine file (a line per entry)."""
    client, namespace = open_repository(redis_url, insecure_tls, repository)
    entries = load_redis(client, namespace)
    if entries:  # test ids and reasons: never a command to the runner
        RunnerLog().text("\n".join(entry.line() for entry in entries))
