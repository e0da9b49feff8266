"""The live check run (issue 14) against the local stand-in for GitHub's API, every body
validated against GitHub's API description (the `github` fixture, tests/conftest.py): a build
of 200 tests whose failures come while it runs gets an ``in_progress`` check run, several
updates (progress, ETA, the annotations so far), then its completion with the final report;
a 403 (a fork's token) and a 429 behave as without a live run.

The summary runs as `ciqueue-gha summary` does (`summarize`, GitHub's variables set); a
worker thread drains the queue with no pytest, pausing after every batch of units until the
stand-in has received a request more: the updates are awaited, never slept for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import redis

from ciqueue_gha.commands import progress as progress_module
from ciqueue_gha.commands.summary import summarize
from ciqueue_gha.config import ReportOptions, Target
from ciqueue_gha.errors import CiqueueError, QueueStateLost
from ciqueue_gha.github.workflow import WORKFLOW_ANNOTATION_LIMIT
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.collection import record_collection
from ciqueue_gha.queue.record import AttemptRecord, CaseRecord
from ciqueue_gha.queue.worker import Lease, QueueWorker
from tests.support.drain import drain_queue
from tests.support.fake_github import RUN_ID, FakeGitHub, Reply, Request

REPOSITORY = "octo-org/octo-repo"
SHA = "0123456789abcdef0123456789abcdef01234567"
UNITS = [f"tests/test_live.py::test_{n:03d}" for n in range(200)]
FAILING = set(UNITS[5::10])  # 20 failures, spread over the build
BATCH = 25  # units run between two awaited requests: 8 batches
AWAIT = 10.0  # longest wait for one request: a live run that never updates fails the test


@pytest.fixture
def actions(monkeypatch: pytest.MonkeyPatch, github: FakeGitHub, tmp_path: Path) -> None:
    """A GitHub Actions job's variables, the API at the stand-in; looks at the queue often."""
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "77",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SHA": SHA,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_API_URL": github.url,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(progress_module, "LOOK_EVERY", 0.02)


def options(tmp_path: Path) -> ReportOptions:
    return ReportOptions(
        report_timeout=120.0,
        inactive_workers_timeout=60.0,
        queue_init_timeout=30.0,
        progress_interval=0.05,
        durations_file=None,
        junit_xml=tmp_path / "merged.xml",
        github_token="ghs_not_a_real_token_0123456789",
        check_name="ciqueue-gha",
        quarantine=None,
    )


def record(lease: Lease) -> AttemptRecord:
    outcome = "failed" if lease.unit in FAILING else "passed"
    line = 10 + UNITS.index(lease.unit)
    case = CaseRecord(
        lease.unit, outcome, 0.5, "assert 1 == 2" if outcome == "failed" else "",
        file="tests/test_live.py", line=line,
    )  # fmt: skip
    return AttemptRecord(lease.unit, outcome, "w1", lease.id, 0.5, cases=[case])


def paced(github: FakeGitHub) -> Callable[[Lease], AttemptRecord]:
    """Runs units; after every `BATCH`, waits until the stand-in got one more request."""
    done = 0

    def execute(lease: Lease) -> AttemptRecord:
        nonlocal done
        done += 1
        if done % BATCH == 0:
            github.wait_for_requests(len(github.requests) + 1, AWAIT)
        return record(lease)

    return execute


def run_build(
    client: redis.Redis, keys: BuildKeys, tmp_path: Path, github: FakeGitHub, *, pace: bool = True
) -> int:
    """The summary of a 200-unit build one worker thread drains (`paced`, or at once); its
    exit code."""
    worker = QueueWorker(client, keys, "w1")
    worker.populate(UNITS)
    record_collection(client, keys, "w1", [], interrupted=False)
    thread = threading.Thread(
        target=drain_queue, args=(worker, paced(github) if pace else record), daemon=True
    )
    thread.start()
    try:
        return summarize(client, Target("redis://unused", True, keys), options(tmp_path))
    finally:
        thread.join(AWAIT)


def output(request: Request) -> dict[str, Any]:
    return dict(request.body.get("output") or {})


@pytest.mark.usefixtures("actions")
def test_a_build_gets_a_check_run_updated_while_it_runs(
    client: redis.Redis, keys: BuildKeys, tmp_path: Path, github: FakeGitHub
) -> None:
    assert run_build(client, keys, tmp_path, github) == 1
    first, *updates, last = github.requests
    assert first.method == "POST" and first.body["status"] == "in_progress"
    assert output(first)["title"].startswith("Running: ")

    # Several updates while it ran, the counts growing, an ETA, the failures as they came.
    assert len(updates) >= 3, [output(r)["title"] for r in github.requests]
    assert all(r.method == "PATCH" and "status" not in r.body for r in updates)
    titles = [output(r)["title"] for r in updates]
    done = [int(title.split()[1].split("/")[0]) for title in titles]
    assert done == sorted(done) and done[0] > 0 and done[-2] < 200, titles
    assert all("ETA " in output(r)["summary"] for r in updates)
    while_running = [a for r in updates for a in output(r).get("annotations", [])]
    assert while_running, titles

    # The completion: the final report, the annotations not sent yet; each failure once.
    assert last.method == "PATCH" and last.path.endswith(f"/check-runs/{RUN_ID}")
    assert last.body["status"] == "completed" and last.body["conclusion"] == "failure"
    assert output(last)["title"] == "200 tests, 180 passed, 20 failed"
    sent = while_running + output(last).get("annotations", [])
    assert sorted(a["title"] for a in sent) == sorted(FAILING)
    assert all(len(output(r).get("annotations", [])) <= 50 for r in github.requests)


@pytest.mark.usefixtures("actions")
def test_a_fork_token_gets_no_live_run_and_annotations_in_the_log(
    client: redis.Redis,
    keys: BuildKeys,
    tmp_path: Path,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = Reply(403, {"message": "Resource not accessible by integration"})
    github.script.append(refused)
    assert run_build(client, keys, tmp_path, github, pace=False) == 1
    # Tried once, when the queue was populated; never again, nor updated.
    assert [r.method for r in github.requests] == ["POST"]
    out = capsys.readouterr().out
    assert "this token cannot write checks" in out
    assert out.count("::error ") == WORKFLOW_ANNOTATION_LIMIT  # as many as the runner shows


@pytest.mark.usefixtures("actions")
def test_a_rate_limited_update_is_skipped_and_the_run_still_completes(
    client: redis.Redis, keys: BuildKeys, tmp_path: Path, github: FakeGitHub
) -> None:
    limited = Reply(429, {"message": "You have exceeded a secondary rate limit"})
    github.script.extend([Reply(201, {"id": RUN_ID}), limited])
    assert run_build(client, keys, tmp_path, github) == 1
    patches = [r for r in github.requests if r.method == "PATCH"]
    assert patches[-1].body["status"] == "completed"
    # The refused update's annotations went out later: every failure is on the run.
    sent = [a["title"] for r in patches[1:] for a in output(r).get("annotations", [])]
    assert sorted(sent) == sorted(FAILING)


@pytest.mark.usefixtures("actions")
def test_a_summary_that_stops_without_a_report_completes_the_run_as_failed(
    client: redis.Redis, keys: BuildKeys, tmp_path: Path, github: FakeGitHub
) -> None:
    ended = threading.Event()

    def lose_state(lease: Lease) -> AttemptRecord:
        if lease.unit == UNITS[50]:  # the live run exists by now: then the build's state goes
            github.wait_for_requests(2, AWAIT)
            client.delete(keys.key("leader"))
            ended.wait(AWAIT)
        return record(lease)

    worker = QueueWorker(client, keys, "w1")
    worker.populate(UNITS)
    record_collection(client, keys, "w1", [], interrupted=False)
    thread = threading.Thread(target=drain_quietly, args=(worker, lose_state), daemon=True)
    thread.start()
    with pytest.raises(QueueStateLost):
        summarize(client, Target("redis://unused", True, keys), options(tmp_path))
    ended.set()
    thread.join(AWAIT)
    last = github.requests[-1]
    assert last.method == "PATCH" and last.body["status"] == "completed"
    assert last.body["conclusion"] == "failure"
    assert "QueueStateLost" in output(last)["summary"]


def drain_quietly(worker: QueueWorker, execute: Callable[[Lease], AttemptRecord]) -> None:
    """`drain_queue`, ending without a word when the build's state is lost under it."""
    with suppress(CiqueueError):
        drain_queue(worker, execute)
