"""`ciqueue-gha flaky`: the flakiest tests of a repository by their recent builds, and a
quarantine file ready to use for them."""

from __future__ import annotations

import json

import click

from ..github.log import RunnerLog
from ..options import whole
from ..trust import history
from .quarantine import open_repository, repository_options


@click.command("flaky")
@repository_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@click.option(
    "--limit", type=whole(1, 100_000), default=20, show_default=True, help="Tests to list."
)
def flaky_command(
    redis_url: str, insecure_tls: bool, repository: str | None, as_json: bool, limit: int
) -> None:
    """List the flakiest tests (failed in some recent builds, passed in others) with their
    rates, then a quarantine file for them."""
    client, namespace = open_repository(redis_url, insecure_tls, repository)
    flakiest = history.flakiest(history.load(client, namespace), limit)
    quarantine = [f"{kept.test}  # {kept.describe()}" for kept in flakiest]
    if as_json:
        tests = [kept.as_json() for kept in flakiest]
        click.echo(json.dumps({"repository": namespace, "tests": tests, "quarantine": quarantine}))
        return
    if not flakiest:
        click.echo(f"no flaky test in the last {history.HISTORY_DAYS} days of {namespace}")
        return
    lines = [f"The flakiest tests of {namespace}, last {history.HISTORY_DAYS} days:"]
    lines += [f"{kept.rate:6.0%}  {kept.test}  ({kept.describe()})" for kept in flakiest]
    lines += ["", "A quarantine file for them (--quarantine FILE):", "", *quarantine]
    RunnerLog().text("\n".join(lines))  # test ids: never a command to the runner
