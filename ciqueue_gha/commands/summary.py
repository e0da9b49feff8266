"""`ciqueue-gha summary`: wait until every test is accounted for, merge, report, exit."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import click
import redis

from .. import durations
from ..config import BuildOptions, ReportOptions, Target, pass_build, pass_report
from ..errors import EXIT_PASSED
from ..fallback.gather import summarize_fallback
from ..fallback.options import summary_fallback_options
from ..fallback.reason import fallback_reason
from ..github.env import GitHubEnv
from ..github.live import LiveCheckRun
from ..github.log import RunnerLog
from ..github.publish import FinishedBuild, publish
from ..github.workflow import WorkflowCommands
from ..options import durations_namespace
from ..protocol.keys import BuildKeys
from ..queue.breaker import stopped_workers, tripped_stop
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
from ..trust import history as outcomes
from ..trust.assess import assess
from ..trust.classify import Trust
from ..trust.quarantine import Quarantine, in_force
from .progress import watching

#: How often a re-run summary looks for the retry's workers, seconds.
RETRY_POLL = 0.2


def summarize(
    client: redis.Redis,
    target: Target,
    options: ReportOptions,
    *,
    workers_gone: Callable[[], bool] | None = None,
    summary_only_rerun: bool = False,
    on_report: Callable[[BuildReport], None] | None = None,
) -> int:
    """Wait for the build, write the merged JUnit and the reports; returns the exit code.

    On GitHub Actions the reports also go to the step outputs, the job summary and a check
    run; a report that cannot be posted never changes the exit code. With
    `summary_only_rerun` (the `summary` command: no workers of its own), an attempt nothing
    was queued for reports the latest earlier attempt that left state, at once.
    """
    keys = reported_keys(client, target, options, summary_only_rerun)
    if not has_trace(client, keys) and (kept := AttemptVerdict.load(client, keys)):
        return report_verdict(kept, keys)
    kept_before = KeptBefore.read(client, options.quarantine)
    verdict, live = wait_for_build(client, keys, options, workers_gone, kept_before.durations)
    history, report = load_report(client, keys, verdict)
    report.trust = judge(client, keys, report, kept_before.quarantine)
    write_junit(report, options.junit_xml)
    if keys == target.keys:  # a report of an earlier attempt again: its durations are in
        save_durations(client, report, options.durations_file, kept_before.durations)
        outcomes.record(client, durations_namespace(), keys.build_id, report.history_outcomes())
    log_report(client, keys, verdict, history, report)
    click.echo(f"ciqueue-gha: merged JUnit: {options.junit_xml}")
    code = report.exit_code_after(verdict)
    records = history.records
    if records[-1].populated:  # what a retry of this attempt needs, after the keys expire
        attempt_verdict = AttemptVerdict.of(keys.attempt, code, records, history.carried)
        keep_verdict(client, keys.build_id, attempt_verdict)
    stopped = None if verdict is Verdict.EXHAUSTED else verdict.value
    finished = FinishedBuild(report, keys, code, stopped, options.junit_xml)
    publish_report(finished, options, live)
    if on_report is not None:
        on_report(report)
    return code


class KeptBefore(NamedTuple):
    """What the repository's builds kept in Redis, read before the wait, not after it: each
    read after the last test is a round trip the build waits for (and a malformed quarantine
    file is said at once)."""

    quarantine: Quarantine
    durations: dict[str, float]

    @classmethod
    def read(cls, client: redis.Redis, quarantine_file: Path | None) -> KeptBefore:
        namespace = durations_namespace()
        in_quarantine = in_force(client, namespace, quarantine_file)
        return cls(in_quarantine, durations.load_redis(client, namespace))


def wait_for_build(
    client: redis.Redis,
    keys: BuildKeys,
    options: ReportOptions,
    workers_gone: Callable[[], bool] | None,
    stored: Mapping[str, float],
) -> tuple[Verdict, LiveCheckRun | None]:
    """Why the summary stopped waiting (every unit done, or a timeout, or the workers gone),
    and the live check run it kept meanwhile, if any; the build's progress shown as it goes."""
    with watching(client, keys, options, stored) as watch:
        supervisor = Supervisor(
            client,
            keys,
            report_timeout=options.report_timeout,
            inactive_workers_timeout=options.inactive_workers_timeout,
            queue_init_timeout=options.queue_init_timeout,
            workers_gone=workers_gone,
            on_status=watch.observe,
        )
        verdict = supervisor.wait().verdict
        if verdict is Verdict.STOPPED and tripped_stop(client, keys):
            verdict = Verdict.TRIPPED
        return verdict, watch.live


def load_report(
    client: redis.Redis, keys: BuildKeys, verdict: Verdict
) -> tuple[BuildHistory, BuildReport]:
    """The records the report stands on, and the build's report merged from them."""
    # A build its collection errors stopped queued nothing: nothing of a queue to check.
    history = load_history(client, keys, populated=verdict is not Verdict.INTERRUPTED)
    # A process-wide choice, made here because this process ends after the report: the
    # records hold no cycles and live until then, so out of the cyclic collector's sight they
    # cost the JUnit and report phases no scans. Reference counting still frees them.
    gc.freeze()
    collection = CollectionRecord.load(client, keys)
    collection.check_whole(keys, populated=history.records[-1].populated)
    report = BuildReport.from_records(history.records, collection)
    report.stopped_workers = stopped_workers(client, keys)
    return history, report


def log_report(
    client: redis.Redis,
    keys: BuildKeys,
    verdict: Verdict,
    history: BuildHistory,
    report: BuildReport,
) -> None:
    """The report as text in the log, then what it says of worker ids and attempts."""
    log = RunnerLog()
    log.text(render_text(report, keys, verdict))
    for line in collision_lines(client, keys):
        log.text(line)
    for line in history_notes(history, keys):
        log.text(f"ciqueue-gha: {line}")


def publish_report(
    finished: FinishedBuild, options: ReportOptions, live: LiveCheckRun | None = None
) -> None:
    """The report on GitHub (step outputs, job summary, check run), when run there."""
    env, commands = GitHubEnv.from_environ(), WorkflowCommands()
    token, name = options.github_token, options.check_name
    publish(finished, env, commands, token=token, check_name=name, live=live)


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


def reported_keys(
    client: redis.Redis, target: Target, options: ReportOptions, summary_only_rerun: bool
) -> BuildKeys:
    """The attempt a summary reports: `reported_attempt` for the `summary` command alone."""
    if not summary_only_rerun:
        return target.keys
    return reported_attempt(client, target.keys, options.queue_init_timeout)


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


def judge(
    client: redis.Redis, keys: BuildKeys, report: BuildReport, quarantine: Quarantine
) -> Trust:
    """How each failure of `report` stands against the `quarantine` in force and the flaky
    history of the builds before this one."""
    failing = [case.final.nodeid for case in report.failures if not case.collection]
    namespace, build = durations_namespace(), keys.build_id
    return assess(client, namespace, build, failing, quarantine, report.repeated_runs())


def save_durations(
    client: redis.Redis, report: BuildReport, path: Path | None, stored: Mapping[str, float]
) -> None:
    """Blend this build's unit durations into the moving averages `stored` (read when the
    summary started: a build of this repository ending meanwhile loses its blend for the
    tests both ran, as when two summaries end together)."""
    measured = report.unit_durations()
    durations.save_redis(client, durations_namespace(), durations.blend(stored, measured))
    if path:
        durations.save_file(path, durations.blend(durations.load_file(path), measured))


@click.command("summary")
@pass_build
@pass_report
@summary_fallback_options
def summary_command(
    build: BuildOptions,
    report_options: ReportOptions,
    fallback: str,
    worker_total: int | None,
    results_dir: Path | None,
) -> None:
    """Wait for every test of the build, merge the results, report them.

    Exits 0 when every test ran and passed, 1 when some failed, 3 when some did not run,
    4 when Redis or the queue failed.
    """
    if reason := fallback_reason(build, fallback):  # no Redis: gather the workers' results
        raise SystemExit(
            summarize_fallback(reason, build, report_options, worker_total, results_dir)
        )
    target, client = build.open()
    raise SystemExit(summarize(client, target, report_options, summary_only_rerun=True))
