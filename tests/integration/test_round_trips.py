"""A worker's hot path is one Redis round trip per test: acknowledge (or requeue) and the next
reserve go in one script call.

Counted on a private redis-server (the session's is shared with other tests) two ways:
INFO commandstats after CONFIG RESETSTAT counts the script calls, and MONITOR on another
connection tells the worker's own commands from those its scripts run (tagged ``lua``).
The worker runs without a heartbeat helper, which has a client of its own anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, Lease, QueueSettings, QueueWorker
from tests.support.drain import drain_queue
from tests.support.redis_server import ControlledRedis

N = 200
#: Tests that fail once and are requeued: requeue shares its round trip with the next reserve.
FLAKY = 10
#: Calls outside the per-test loop: the first reserve and the release at the end.
OVERHEAD = 2
END_MARKER = "ciqueue-round-trips-end"


@dataclass
class Measured:
    executed: int
    commandstats: dict[str, int]  # command -> calls, over the server
    worker_commands: Counter[str]  # command -> calls the worker's client sent (MONITOR)
    lua_commands: int  # commands the scripts ran (MONITOR)
    other_clients: Counter[str]  # "address command" of any other client but the marker's

    @property
    def round_trips(self) -> int:
        return sum(self.worker_commands.values())

    def figures(self) -> str:
        return (
            f"{self.executed} executions of {N} tests: {self.round_trips} round trips "
            f"({self.round_trips / self.executed:.3f} per test), "
            f"{self.lua_commands} commands inside scripts "
            f"({self.lua_commands / self.executed:.1f} per test); "
            f"worker sent {dict(self.worker_commands)}, commandstats {self.commandstats}"
        )


def run_worker(worker: QueueWorker) -> int:
    """Drain the queue: every test passes, except the first run of the flaky ones."""
    runs: Counter[str] = Counter()

    def execute(lease: Lease) -> AttemptRecord:
        runs[lease.unit] += 1
        flaky_first_run = lease.unit.endswith("flaky") and runs[lease.unit] == 1
        return AttemptRecord(unit=lease.unit, outcome="failed" if flaky_first_run else "passed")

    return drain_queue(worker, execute)


def commandstats(admin: redis.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def read_monitor(monitor: redis.client.Monitor, worker_addr: str) -> Measured:
    """Read MONITOR lines up to the end marker, sorted by who sent them."""
    worker, other, lua = Counter[str](), Counter[str](), 0
    while True:
        line = monitor.next_command()  # type: ignore[no-untyped-call]
        if END_MARKER in line["command"]:
            break
        name = line["command"].split(" ", 1)[0].lower()
        if line["client_type"] == "lua":
            lua += 1
        elif f"{line['client_address']}:{line['client_port']}" == worker_addr:
            worker[name] += 1
        else:
            other[f"{line['client_address']}:{line['client_port']} {name}"] += 1
    return Measured(0, {}, worker, lua, other)


@pytest.fixture(scope="module")
def measured() -> Iterator[Measured]:
    tests = [f"tests/test_round_trips.py::test_{i:03d}" for i in range(N - FLAKY)]
    tests += [f"tests/test_round_trips.py::test_{i:03d}_flaky" for i in range(FLAKY)]
    settings = QueueSettings(max_requeues=1, requeue_tolerance=1.0)
    with (
        ControlledRedis() as server,
        closing(connect(server.url)) as admin,
        closing(connect(server.url)) as client,
        closing(connect(server.url)) as marker,
    ):
        worker = QueueWorker(client, BuildKeys("round-trips"), "w1", settings)
        # Outside the count: loading the scripts, populating, and the connection's handshake.
        worker.scripts.load_all()
        worker.populate(tests)
        # The scripts go out on a connection of the worker's own, not the client's pool.
        worker.scripts.connection.send_command("CLIENT", "INFO")
        worker_addr = str(worker.scripts.connection.read_response()).split("addr=")[1].split()[0]
        marker.ping()  # connected now, so its handshake is not counted below either
        admin.config_resetstat()
        with admin.monitor() as monitor:  # type: ignore[no-untyped-call]
            executed = run_worker(worker)
            marker.echo(END_MARKER)
            seen = read_monitor(monitor, worker_addr)
        seen.executed, seen.commandstats = executed, commandstats(admin)
        yield seen


def test_each_test_costs_one_script_call_in_commandstats(measured: Measured) -> None:
    assert measured.executed == N + FLAKY, measured.figures()
    assert measured.commandstats.get("evalsha") == measured.executed + OVERHEAD, measured.figures()
    assert "eval" not in measured.commandstats, measured.figures()


def test_the_worker_client_sends_one_command_per_test(measured: Measured) -> None:
    assert measured.worker_commands == Counter({"evalsha": measured.executed + OVERHEAD}), (
        measured.figures()
    )
    assert measured.round_trips <= measured.executed + OVERHEAD, measured.figures()
    assert not measured.other_clients, measured.figures()


def test_the_scripts_do_the_work_server_side(measured: Measured) -> None:
    # MONITOR saw the scripts' own commands: the count above is not blind to them.
    assert measured.lua_commands > measured.executed, measured.figures()
