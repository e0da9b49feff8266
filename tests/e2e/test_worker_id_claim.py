"""One worker id, one process (issue 10, #8): two `ciqueue-gha worker` processes started with
the same CIQUEUE_WORKER_ID (two workflows' jobs both passing ``strategy.job-index`` under one
run id) never share a lease. The second runs as ``<id>~2`` and says so, every test runs once,
none is dropped, and the summary reports the collision in one line.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from ciqueue_gha.errors import EXIT_PASSED
from ciqueue_gha.redis_server import PrivateRedis
from tests.e2e.test_runner import (
    Commands,
    clean_env,
    cli,
    commands,  # noqa: F401  (the fixture)
    copy_suite,
    junit_by_case,
    new_build_id,
)

TESTS = {f"test_once[{n}]" for n in range(20)}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("late", "lease_timeout"),
    [
        (0.0, None),
        # The second starts well after the claim's own timeout (the lease timeout): only the
        # first worker's heartbeat helper keeping the claim alive tells it the id is in use.
        (7.0, "3"),
    ],
    ids=["together", "later-than-the-claim-timeout"],
)
def test_two_workers_under_one_id_run_every_test_once(
    late: float,
    lease_timeout: str | None,
    commands: Commands,  # noqa: F811
    tmp_path: Path,
    redis_server: PrivateRedis,
) -> None:
    suite = copy_suite("same_id", tmp_path)
    log, company = tmp_path / "suite.log", tmp_path / "company"
    company.mkdir()
    env = clean_env(
        tmp_path, CIQUEUE_WORKER_ID="shared", SUITE_LOG=str(log), COMPANY_DIR=str(company)
    )
    build = ["--redis-url", redis_server.url, "--build-id", new_build_id("same-id")]
    timing = ["--lease-timeout", lease_timeout] if lease_timeout else []
    worker = [*cli(), "worker", *build, *timing, "--", "-q"]
    workers = [commands.start("worker-1", worker, cwd=suite, env=env)]
    time.sleep(late)
    workers.append(commands.start("worker-2", worker, cwd=suite, env=env))
    merged = tmp_path / "merged.xml"
    summary = commands.run(
        "summary", [*cli(), "summary", *build, "--junit-xml", str(merged)], cwd=suite, env=env
    )
    for worker in workers:
        assert worker.wait() == EXIT_PASSED, worker.output()
    outputs = [worker.output() for worker in (*workers, summary)]
    assert not any("Traceback" in output for output in outputs), outputs

    # Every test ran once, by one of two identities, each a process of its own.
    runs = [line.split("\t") for line in log.read_text().splitlines()]
    assert Counter(test for _, _, test in runs) == Counter(TESTS), runs
    assert {worker_id for worker_id, _, _ in runs} == {"shared", "shared~2"}, runs
    assert len({(worker_id, pid) for worker_id, pid, _ in runs}) == 2, runs
    # The second process said who it runs as.
    said = [line for output in outputs[:2] for line in output.splitlines() if "in use by" in line]
    assert said == [
        "ciqueue-gha: WARNING: worker id shared is in use by another live process of this "
        "build: this one runs as shared~2"
    ], outputs[:2]

    # None dropped: the summary reports all twenty, passed, and the collision in one line.
    assert summary.process.returncode == EXIT_PASSED, summary.output()
    outcomes = {name: result.outcome for (_, name), result in junit_by_case(merged).items()}
    assert outcomes == dict.fromkeys(TESTS, "passed")
    collisions = [line for line in summary.output().splitlines() if "live processes" in line]
    assert collisions == [
        "ciqueue-gha: WARNING: worker id shared was given to 2 live processes at once; the "
        "later ones ran as shared~2 (give each worker its own id)"
    ], summary.output()
