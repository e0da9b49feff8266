"""The flaky history in Redis (trust/history.py): one entry per build, bounded in count and
age, and forgotten with the durations' lifetime."""

from __future__ import annotations

import pytest
import redis

from ciqueue_gha.protocol.keys import outcomes_key
from ciqueue_gha.trust import history

TEST = "t.py::test_a"


def test_a_rerun_of_a_build_replaces_its_entry(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    namespace = request.node.name
    history.record(client, namespace, "1", {TEST: "failed"})
    history.record(client, namespace, "2", {TEST: "failed"})
    history.record(client, namespace, "2", {TEST: "flaky"})  # attempt 2 of build 2

    kept = history.load(client, namespace)[TEST]
    assert [(build, outcome) for build, _, outcome in kept.entries] == [
        ("1", "failed"),
        ("2", "flaky"),
    ]
    assert kept.rate == 1.0 and kept.flaky  # a flaky build failed and passed
    assert history.load(client, namespace, [TEST], but="2")[TEST].builds == 1
    assert 0 < client.ttl(outcomes_key(namespace)) <= history.HISTORY_TTL


def test_history_keeps_the_newest_builds_and_forgets_old_ones(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    namespace = request.node.name
    now = int(client.time()[0])
    client.hset(outcomes_key(namespace), TEST, f"old {now - history.HISTORY_TTL - 60} f")
    assert history.load(client, namespace) == {}  # older than 30 days: not read
    for build in range(history.HISTORY_CAP + 5):
        history.record(client, namespace, str(build), {TEST: "passed", "t.py::test_b": "failed"})

    kept = history.load(client, namespace)
    assert kept[TEST].builds == history.HISTORY_CAP
    assert kept[TEST].entries[0][0] == "5" and kept[TEST].entries[-1][0] == str(
        history.HISTORY_CAP + 4
    )
    assert not kept["t.py::test_b"].flaky  # failing every time is no flake
    assert history.flakiest(kept, 10) == []
