"""`ciqueue-gha queue populate | status` as a user runs them: leader election, the build id
and attempt from the environment (CIQUEUE_* first, then GitHub's), and the status output."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, Lease, QueueWorker, Reservation

from .test_cli_errors import run_cli

TESTS = ["tests/test_a.py::test_one", "tests/test_a.py::test_two[x y]", "tests/test_b.py::test_3"]

_numbers = itertools.count(1)


@pytest.fixture
def build_id() -> str:
    return f"cli-queue-{next(_numbers)}"


@pytest.fixture
def tests_file(tmp_path: Path) -> Path:
    path = tmp_path / "tests.txt"
    path.write_text("\n".join(TESTS) + "\n\n")  # a trailing blank line is ignored
    return path


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_first_populate_leads_and_the_next_follows(
    redis_url: str, build_id: str, tests_file: Path, raw: redis.Redis
) -> None:
    args = ["queue", "populate", "--redis-url", redis_url, "--tests-file", str(tests_file)]
    first = run_cli(*args, "--build-id", build_id, "--worker-id", "w1")
    assert first.code == 0, first.stderr
    assert first.stdout == f"leader: build {build_id} attempt 1: 3 tests\n"
    assert first.stderr == ""
    keys = BuildKeys(build_id)
    assert raw.lrange(keys.key("queue"), 0, -1) == TESTS
    assert raw.get(keys.key("leader")) == "w1"

    second = run_cli(*args, "--build-id", build_id, "--worker-id", "w2")
    assert second.code == 0, second.stderr
    assert second.stdout == f"follower: build {build_id} attempt 1: 3 tests\n"
    assert second.stderr == ""
    assert raw.llen(keys.key("queue")) == 3  # nothing pushed twice

    # The leader's retry (its reply lost) is recognised by its worker id: leader, no re-push.
    again = run_cli(*args, "--build-id", build_id, "--worker-id", "w1")
    assert again.stdout.startswith("leader:")
    assert raw.llen(keys.key("queue")) == 3


def test_follower_with_other_tests_is_warned(
    redis_url: str, build_id: str, tests_file: Path
) -> None:
    common = ["queue", "populate", "--redis-url", redis_url, "--build-id", build_id]
    assert run_cli(*common, "--tests-file", str(tests_file)).code == 0
    other = run_cli(*common, "--tests-file", "-", stdin="tests/test_a.py::test_one\n")
    assert other.code == 0
    assert other.stdout.startswith("follower:")
    assert (
        other.stderr
        == "ciqueue-gha: WARNING: these 1 tests are not the 3 tests the leader queued\n"
    )


def test_build_id_and_attempt_come_from_ciqueue_then_github(
    redis_url: str, tests_file: Path, raw: redis.Redis
) -> None:
    args = ["queue", "populate", "--redis-url", redis_url, "--tests-file", str(tests_file)]
    github = run_cli(*args, env={"GITHUB_RUN_ID": "9001", "GITHUB_RUN_ATTEMPT": "3"})
    assert github.stdout == "leader: build 9001 attempt 3: 3 tests\n", github.stderr
    assert raw.exists(BuildKeys("9001", 3).key("ready"))

    ours = run_cli(
        *args,
        env={
            "GITHUB_RUN_ID": "9002",
            "GITHUB_RUN_ATTEMPT": "3",
            "CIQUEUE_BUILD_ID": "mine-9002",
            "CIQUEUE_ATTEMPT": "2",
        },
    )
    assert ours.stdout == "leader: build mine-9002 attempt 2: 3 tests\n", ours.stderr
    assert raw.exists(BuildKeys("mine-9002", 2).key("ready"))
    assert not raw.exists(BuildKeys("9002", 3).key("ready"))

    # Without GITHUB_RUN_ATTEMPT or CIQUEUE_ATTEMPT, attempt 1.
    plain = run_cli(*args, env={"GITHUB_RUN_ID": "9003"})
    assert plain.stdout == "leader: build 9003 attempt 1: 3 tests\n", plain.stderr

    # Options beat the environment.
    flags = run_cli(*args, "--build-id", "flag-9004", "--attempt", "4", env={"GITHUB_RUN_ID": "x"})
    assert flags.stdout == "leader: build flag-9004 attempt 4: 3 tests\n", flags.stderr


def test_tests_from_stdin(redis_url: str, build_id: str, raw: redis.Redis) -> None:
    result = run_cli(
        "queue", "populate", "--redis-url", redis_url, "--build-id", build_id,
        "--tests-file", "-", stdin="t1\r\n  t2  \n\nt3",
    )  # fmt: skip
    assert result.stdout == f"leader: build {build_id} attempt 1: 3 tests\n", result.stderr
    assert raw.lrange(BuildKeys(build_id).key("queue"), 0, -1) == ["t1", "t2", "t3"]


def test_every_key_written_by_populate_expires(
    redis_url: str, build_id: str, tests_file: Path, raw: redis.Redis
) -> None:
    args = ["queue", "populate", "--redis-url", redis_url, "--build-id", build_id]
    assert run_cli(*args, "--tests-file", str(tests_file)).code == 0
    written = list(raw.scan_iter(match=f"ciq:{{{build_id}}}:*"))
    assert len(written) >= 6
    assert all(raw.ttl(key) > 0 for key in written)


def test_status_follows_the_build(redis_url: str, build_id: str, tests_file: Path) -> None:
    status = ["queue", "status", "--redis-url", redis_url, "--build-id", build_id]
    before = run_cli(*status)
    assert before.code == 0, before.stderr
    assert before.stdout.splitlines() == [
        f"build {build_id} attempt 1: not populated",
        "total 0, queued 0, running 0 (0 with a live lease), finalized 0 (0 failed)",
        "no worker seen yet",
    ]

    populate = ["queue", "populate", "--redis-url", redis_url, "--build-id", build_id]
    assert run_cli(*populate, "--tests-file", str(tests_file)).code == 0
    queued = run_cli(*status).stdout.splitlines()
    assert queued[0] == f"build {build_id} attempt 1: in progress"
    assert queued[1] == "total 3, queued 3, running 0 (0 with a live lease), finalized 0 (0 failed)"

    worker = QueueWorker(connect(redis_url), BuildKeys(build_id), "w1")
    worker.populate(TESTS)
    lease = worker.reserve()
    assert isinstance(lease, Lease)
    running = run_cli(*status).stdout.splitlines()
    assert (
        running[1] == "total 3, queued 2, running 1 (1 with a live lease), finalized 0 (0 failed)"
    )
    assert running[2].startswith("last worker seen ")

    outcomes = iter(["failed", "passed", "passed"])
    reservation: Reservation | None = lease
    while isinstance(reservation, Lease):
        _, reservation = worker.acknowledge(
            reservation, AttemptRecord(reservation.unit, next(outcomes))
        )
    done = run_cli(*status)
    assert done.stdout.splitlines()[:2] == [
        f"build {build_id} attempt 1: exhausted",
        "total 3, queued 0, running 0 (0 with a live lease), finalized 3 (1 failed)",
    ]

    as_json = json.loads(run_cli(*status, "--json").stdout)
    assert as_json["exhausted"] is True
    assert as_json["ready"] is True
    assert (as_json["total"], as_json["finalized"], as_json["failed"]) == (3, 3, 1)
    assert as_json["since_seen_ms"] >= 0


def test_populate_of_a_retry_queues_what_the_attempt_before_left(
    redis_url: str, build_id: str, tests_file: Path, raw: redis.Redis
) -> None:
    """Attempt 2 queues the units attempt 1 failed or never finished, as a worker would."""
    populate = ["queue", "populate", "--redis-url", redis_url, "--build-id", build_id]
    assert run_cli(*populate, "--tests-file", str(tests_file)).code == 0
    worker = QueueWorker(connect(redis_url), BuildKeys(build_id), "w1")
    worker.populate(TESTS)
    failed = worker.reserve()
    assert isinstance(failed, Lease)
    _, passed = worker.acknowledge(failed, AttemptRecord(failed.unit, "failed"))
    assert isinstance(passed, Lease)
    worker.acknowledge(passed, AttemptRecord(passed.unit, "passed"), reserve_next=False)
    # The third unit never ran: attempt 1 ends with one failed and one unfinished.

    retry = run_cli(*populate, "--attempt", "2", "--tests-file", str(tests_file))
    assert (retry.code, retry.stderr) == (0, "")
    assert retry.stdout == f"leader: build {build_id} attempt 2: 2 tests\n"
    second = BuildKeys(build_id, 2)
    assert raw.lrange(second.key("queue"), 0, -1) == [t for t in TESTS if t != passed.unit]
    assert raw.get(second.key("basis")) == "1"  # its summary merges attempt 1
