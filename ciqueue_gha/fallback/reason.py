"""Whether a command runs without the queue, and the loud line that says so. Imports no
pytest: the summary asks too."""

from __future__ import annotations

import click

from ..config import BuildOptions
from ..errors import RedisUnreachable
from ..github.env import GitHubEnv
from ..github.workflow import WorkflowCommands


def fallback_reason(build: BuildOptions, fallback: str) -> str | None:
    """Why this command runs without the queue (`--fallback static` and no Redis URL, or a
    Redis unreachable at the first contact); None when it runs with the queue. Any other
    failure (bad URL, refused credentials, no build id) stays what it is without a fallback."""
    if fallback != "static":
        return None
    if not build.redis_url:
        return "no Redis URL is configured"
    target = build.target()
    try:
        target.open().close()
    except RedisUnreachable as exc:
        return str(exc)
    return None


def announce(text: str) -> None:
    """One loud line: on stderr, and a warning annotation on GitHub Actions."""
    line = f"ciqueue-gha: WITHOUT THE QUEUE: {text}"
    if GitHubEnv.from_environ().runner:
        WorkflowCommands().warning(line)
    else:
        click.echo(line, err=True)
