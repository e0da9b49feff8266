"""`ciqueue-gha summary`: wait until every test is accounted for, merge, report, exit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import redis

from .. import durations
from ..connection import check_server, connect
from ..github.env import GitHubEnv
from ..github.log import RunnerLog
from ..github.publish import FinishedBuild, publish
from ..github.workflow import WorkflowCommands
from ..options import (
    Target,
    connection_options,
    durations_namespace,
    durations_option,
    github_options,
    merged_junit_option,
    queue_init_option,
    supervisor_options,
)
from ..queue.claim import collision_lines
from ..queue.collection import CollectionRecord
from ..queue.record import BuildRecord
from ..queue.supervisor import Supervisor, Verdict
from ..report.junit import write_junit
from ..report.outcome import BuildOutcome
from ..report.text import render_text


def summarize(
    client: redis.Redis,
    target: Target,
    *,
    report_timeout: float,
    inactive_workers_timeout: float,
    queue_init_timeout: float,
    junit_xml: Path,
    durations_file: Path | None,
    github_token: str | None = None,
    check_name: str = "ciqueue-gha",
    workers_gone: Callable[[], bool] | None = None,
) -> int:
    """Wait for the build, write the merged JUnit and the reports; returns the exit code.

    On GitHub Actions the reports also go to the step outputs, the job summary and a check
    run; a report that cannot be posted never changes the exit code.
    """
    supervisor = Supervisor(
        client,
        target.keys,
        report_timeout=report_timeout,
        inactive_workers_timeout=inactive_workers_timeout,
        queue_init_timeout=queue_init_timeout,
        workers_gone=workers_gone,
    )
    verdict = supervisor.wait().verdict
    records = BuildRecord.load_attempts(client, target.keys)
    collection = CollectionRecord.load(client, target.keys)
    collection.check_whole(target.keys, populated=records[-1].populated)
    outcome = BuildOutcome.from_records(records, collection)
    write_junit(outcome, junit_xml)
    save_durations(client, outcome, durations_file)
    log = RunnerLog()
    log.text(render_text(outcome, target.keys, verdict))
    for line in collision_lines(client, target.keys):
        log.text(line)
    click.echo(f"ciqueue-gha: merged JUnit: {junit_xml}")
    code = outcome.exit_code_after(verdict)
    finished = FinishedBuild(
        outcome,
        records,
        target.keys,
        code,
        None if verdict is Verdict.EXHAUSTED else verdict.value,
        junit_xml,
    )
    publish(
        finished,
        GitHubEnv.from_environ(),
        WorkflowCommands(),
        token=github_token,
        check_name=check_name,
    )
    return code


def save_durations(client: redis.Redis, outcome: BuildOutcome, path: Path | None) -> None:
    """Blend this build's unit durations into the stored moving averages."""
    measured = outcome.unit_durations()
    namespace = durations_namespace()
    stored = durations.load_redis(client, namespace)
    durations.save_redis(client, namespace, durations.blend(stored, measured))
    if path:
        durations.save_file(path, durations.blend(durations.load_file(path), measured))


@click.command("summary")
@connection_options
@supervisor_options
@queue_init_option
@durations_option
@merged_junit_option
@github_options
def summary_command(
    redis_url: str | None,
    insecure_tls: bool,
    build_id: str | None,
    attempt: int | None,
    report_timeout: float,
    inactive_workers_timeout: float,
    queue_init_timeout: float,
    durations_file: Path | None,
    junit_xml: Path,
    github_token: str | None,
    check_name: str,
) -> None:
    """Wait for every test of the build, merge the results, report them.

    Exits 0 when every test ran and passed, 1 when some failed, 3 when some did not run,
    4 when Redis or the queue failed.
    """
    target = Target.resolve(redis_url, insecure_tls, build_id, attempt)
    client = connect(target.redis_url, verify_tls=target.verify_tls)
    check_server(client, target.redis_url)
    raise SystemExit(
        summarize(
            client,
            target,
            report_timeout=report_timeout,
            inactive_workers_timeout=inactive_workers_timeout,
            queue_init_timeout=queue_init_timeout,
            junit_xml=junit_xml,
            durations_file=durations_file,
            github_token=github_token,
            check_name=check_name,
        )
    )
