"""The ``ciqueue-gha`` command line.

Every failure is one line on stderr and an exit code from DESIGN.md §1: `main` turns a
`CiqueueError`, a click usage error or a Redis error into that, never into a traceback.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import suppress
from typing import NoReturn

import click

from . import __version__
from .errors import EXIT_USAGE, CiqueueError
from .fastexit import exit_now
from .github.env import GitHubEnv
from .github.log import RunnerLog
from .options import build_id_option, insecure_tls_option, redis_url_option, whole
from .redis_server import PrivateRedis
from .secrets import hand_over, received

#: The redis group's own words for the connection options: it checks or stops a server.
server_url_option = redis_url_option(
    "redis://, rediss:// (TLS, verified) or unix:// URL of the queue's Redis.", required=True
)
server_tls_option = insecure_tls_option(
    "Do not verify the certificate of a rediss:// server (says so loudly)."
)


#: The commands in modules of their own, imported only when run: a worker has no use for the
#: report's libraries, nor `run` and `summary` for pytest, and every import is start-up time
#: each process of a build pays.
LAZY_COMMANDS = {
    "worker": "ciqueue_gha.commands.worker:worker_command",
    "summary": "ciqueue_gha.commands.summary:summary_command",
    "run": "ciqueue_gha.commands.run:run_command",
    "queue": "ciqueue_gha.commands.queue:queue_command",
    "quarantine": "ciqueue_gha.commands.quarantine:quarantine_command",
    "flaky": "ciqueue_gha.commands.flaky:flaky_command",
}


class LazyGroup(click.Group):
    """A group whose `LAZY_COMMANDS` are imported when asked for by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, name = LAZY_COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="ciqueue-gha")
def cli() -> None:
    """Spread one pytest suite over many CI jobs through a lease-based queue in Redis."""


@cli.group("redis")
def redis_group() -> None:
    """Start, check and stop a Redis for the queue."""


@redis_group.command("start")
@click.option("--port", type=whole(1, 65535), help="Port on 127.0.0.1 (default: free).")
def redis_start(port: int | None) -> None:
    """Start a private redis-server on loopback in the background and print its URL."""
    server = PrivateRedis(port=port)
    server.start_detached()
    click.echo(server.url)


@redis_group.command("check")
@server_url_option
@server_tls_option
@build_id_option("Say which cluster master holds this build. Default: GITHUB_RUN_ID.")
def redis_check(redis_url: str, insecure_tls: bool, build_id: str | None) -> None:
    """Check that Redis is reachable, new enough, and runs the queue's scripts."""
    from .cluster import on_build, placement
    from .connection import open_server, redact
    from .protocol.keys import BuildKeys
    from .protocol.scripts import SCRIPT_NAMES, Scripts

    server = open_server(redis_url, verify_tls=not insecure_tls)
    build = build_id or GitHubEnv.from_environ().run_id
    keys = BuildKeys(build or "ciqueue-gha-check")
    client = on_build(server.client, redis_url, keys, cluster=server.cluster)
    scripts = Scripts(client)
    scripts.load_all()
    # Loading is not running (an ACL may allow one, not the other): run a read-only one.
    scripts.call("status", keys.status_keys(), [])
    shown = ".".join(map(str, server.version))
    click.echo(f"ok: Redis {shown} at {redact(redis_url)}, {len(SCRIPT_NAMES)} scripts loaded")
    where = placement(client, build)
    if where:
        click.echo(where)


@redis_group.command("stop")
@server_url_option
@server_tls_option
def redis_stop(redis_url: str, insecure_tls: bool) -> None:
    """Shut down the Redis at --redis-url (one started by `redis start`), without saving."""
    import redis

    from .connection import open_server, redact

    client = open_server(redis_url, verify_tls=not insecure_tls, retry=False).client
    # The server closes the connection as it goes: that is success.
    with suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
    click.echo(f"stopped: {redact(redis_url)}")


def _fail(message: str, code: int) -> NoReturn:
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    # It may quote input (a build id, a test id): one line, never a command to a runner.
    RunnerLog(err=True).text(f"ciqueue-gha: {one_line}")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; failures become one line on stderr and a documented exit code.

    Without `argv` this is the process's entry point (the console script, ``python -m``),
    which exits without the interpreter's teardown (`exit_now`); with `argv` it is called
    from other code (the action), which gets `SystemExit` as from any command line.
    """
    try:
        _main(argv)
    except SystemExit as exit_:
        if argv is not None:
            raise
        exit_now(exit_.code)


def _main(argv: list[str] | None) -> None:
    try:
        if argv is None:  # no ciqueue-gha process keeps a secret where others can read it
            hand_over(sys.argv[1:], "ciqueue_gha.cli")
        received()  # the pipe read and closed before any test can find it
        code = cli.main(args=argv, prog_name="ciqueue-gha", standalone_mode=False)
    except click.UsageError as exc:
        # A group run without a command (click >= 8.2 raises this): its help, then the line.
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            click.echo(exc.ctx.get_help())
            _fail("usage error: missing command", EXIT_USAGE)
        _fail(f"usage error: {exc.format_message()}", EXIT_USAGE)
    except click.ClickException as exc:  # a file that cannot be opened, say
        _fail(f"usage error: {exc.format_message()}", EXIT_USAGE)
    except click.Abort:
        _fail("interrupted", 130)
    except CiqueueError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except Exception as exc:
        _fail_on_redis_error(exc)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _fail_on_redis_error(exc: Exception) -> None:
    """Fail with one line if `exc` is Redis's (imported only now: most runs never need to):
    retries exhausted mid-work, out of memory, no permission, ..., never a crash."""
    import redis

    from .protocol.scripts import redis_failure

    if isinstance(exc, redis.RedisError):
        failure = redis_failure(exc)
        _fail(f"error: {failure}", failure.exit_code)


if __name__ == "__main__":
    main()
