"""`ciqueue-gha summary`: wait until every test is accounted for, merge, report, exit."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import click
import redis

from .. import durations
from ..connection import check_server, connect
from ..errors import EXIT_PASSED
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
from ..protocol.keys import BuildKeys
from ..queue.claim import collision_lines
from ..queue.collection import CollectionRecord
from ..queue.retry import (
    BuildHistory,
    has_trace,
    latest_with_state,
    left_state,
    load_history,
)
from ..queue.supervisor import Supervisor, Verdict
from ..queue.verdict import AttemptVerdict
from ..report.build import BuildReport
from ..report.junit import write_junit
from ..report.text import render_text
from ..truncate import REDIS_REPLY_LIMIT, shown

#: How often a re-run summary looks for the retry's workers, seconds.
RETRY_POLL = 0.2


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
    summary_only_rerun: bool = False,
) -> int:
    """Wait for the build, write the merged JUnit and the reports; returns the exit code.

    On GitHub Actions the reports also go to the step outputs, the job summary and a check
    run; a report that cannot be posted never changes the exit code. With
    `summary_only_rerun` (the `summary` command: no workers of its own), an attempt nothing
    was queued for reports the latest earlier attempt that left state, at once.
    """
    keys = (
        reported_attempt(client, target.keys, queue_init_timeout)
        if summary_only_rerun
        else target.keys
    )
    if not has_trace(client, keys) and (kept := AttemptVerdict.load(client, keys)):
        return report_verdict(kept, keys)
    supervisor = Supervisor(
        client,
        keys,
        report_timeout=report_timeout,
        inactive_workers_timeout=inactive_workers_timeout,
        queue_init_timeout=queue_init_timeout,
        workers_gone=workers_gone,
    )
    verdict = supervisor.wait().verdict
    # A build its collection errors stopped queued nothing: nothing of a queue to check.
    history = load_history(client, keys, populated=verdict is not Verdict.INTERRUPTED)
    records = history.records
    populated = records[-1].populated
    collection = CollectionRecord.load(client, keys)
    collection.check_whole(keys, populated=populated)
    report = BuildReport.from_records(records, collection)
    write_junit(report, junit_xml)
    if keys == target.keys:  # a report of an earlier attempt again: its durations are in
        save_durations(client, report, durations_file)
    log = RunnerLog()
    log.text(render_text(report, keys, verdict))
    for line in collision_lines(client, keys):
        log.text(line)
    for line in history_notes(history, keys):
        log.text(f"ciqueue-gha: {line}")
    click.echo(f"ciqueue-gha: merged JUnit: {junit_xml}")
    code = report.exit_code_after(verdict)
    if populated:  # what a retry of this attempt needs, kept after the build's keys expire
        attempt_verdict = AttemptVerdict.of(keys.attempt, code, records, history.carried)
        keep_verdict(client, keys.build_id, attempt_verdict)
    finished = FinishedBuild(
        report,
        keys,
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


def keep_verdict(client: redis.Redis, build_id: str, verdict: AttemptVerdict) -> None:
    """Save `verdict`; a Redis that refuses (out of memory) costs a later re-run only its
    shortcut (it runs the whole suite), never this build its result: one line, no failure."""
    try:
        verdict.save(client, build_id)
    except redis.RedisError as exc:
        said = shown(" ".join(str(exc).split()), REDIS_REPLY_LIMIT, quote=False)
        click.echo(
            f"ciqueue-gha: WARNING: attempt {verdict.attempt}'s verdict was not kept "
            f"({said}): a re-run after the build's keys expire runs the whole suite",
            err=True,
        )


def reported_attempt(client: redis.Redis, keys: BuildKeys, wait_for: float) -> BuildKeys:
    """The attempt a `summary` reports: its own, unless nothing was queued for it and an
    earlier attempt left state or a verdict.

    After a green attempt only the summary job can be re-run (no worker job failed), so that
    attempt is reported at once. After a red one, GitHub's "re-run failed jobs" starts this
    summary beside the workers of the retry: it waits `wait_for` seconds for them to leave a
    trace, and reports the earlier attempt only if none came (the summary job re-run alone).
    """
    if keys.attempt == 1 or left_state(client, keys):  # its workers came (or are coming)
        return keys
    earlier = latest_with_state(client, keys)
    if earlier is None:
        return keys  # nothing to report instead: wait for workers as usual
    earlier_keys = BuildKeys(keys.build_id, earlier)
    verdict = AttemptVerdict.load(client, earlier_keys)
    if verdict is None or verdict.exit_code != EXIT_PASSED:
        deadline = time.monotonic() + wait_for
        while time.monotonic() < deadline:
            if left_state(client, keys):
                return keys
            time.sleep(RETRY_POLL)
    click.echo(
        f"ciqueue-gha: nothing was queued for attempt {keys.attempt} (the summary job re-run "
        f"alone): reporting attempt {earlier}, the latest attempt with state"
    )
    return earlier_keys


def history_notes(history: BuildHistory, keys: BuildKeys) -> list[str]:
    """What the report says of the attempts it stands on: a whole-suite retry, a verdict
    standing in for expired records."""
    notes = []
    if keys.attempt > 1 and history.records[-1].basis == 0:
        notes.append(
            f"attempt {keys.attempt} ran the whole suite: no earlier attempt's state or verdict "
            "was left to retry from"
        )
    carried = history.carried
    if carried is not None:
        kept = ", ".join(f"{count} {outcome}" for outcome, count in sorted(carried.kept.items()))
        notes.append(
            f"plus {carried.kept_cases} tests done for good by attempt {carried.attempt}, whose "
            f"records expired, counted from its verdict ({kept or 'none'}): "
            f"{carried.units} units in the suite"
        )
    return notes


def report_verdict(kept: AttemptVerdict, keys: BuildKeys) -> int:
    """Report an attempt from its verdict alone (its records expired): counts, the units that
    failed or did not finish, and its exit code."""
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(kept.kept.items()))
    click.echo(
        f"ciqueue-gha: build {keys.build_id} attempt {keys.attempt} (its records expired; from "
        f"its verdict): {kept.units} units, {kept.kept_cases} tests done ({counts or 'none'}), "
        f"{len(kept.rerun)} units failed or did not finish"
    )
    if kept.rerun:  # test ids: never a command to the runner
        RunnerLog().text("\n".join(f"FAILED OR NOT RUN {unit}" for unit in kept.rerun))
    click.echo("ciqueue-gha: no merged JUnit: the attempt's records expired")
    return kept.exit_code


def save_durations(client: redis.Redis, report: BuildReport, path: Path | None) -> None:
    """Blend this build's unit durations into the stored moving averages."""
    measured = report.unit_durations()
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
            summary_only_rerun=True,
        )
    )
