"""What a test costs Redis: Redis's time, commands and round trips per finalized test, from
INFO commandstats (and SLOWLOG) and INFO cpu; the target is a whole build's.

Four measurements on a private redis-server, each after CONFIG RESETSTAT:

1. One lease a call (the k=1 path): one `QueueWorker` drains 2,000 tests, each acknowledged
   together with the next reserve of one unit. Round trips are counted on the worker's side
   and checked against the server's count of script calls.
2. Windows: the plugin's own `LeaseWindow` drains 2,000 zero-length units the same way
   (one reserve call grants a window, one acknowledge settles half a window's attempts).
3. A whole build: `ciqueue-gha run --workers 2` on a generated suite of 2,000 trivial tests:
   populate, the heartbeat helpers, the supervisor's polls, the summary's reads, all of it.
   Issue 12's measure: the scripts' time from commandstats (their own commands inside it;
   the lower of two builds: a busy machine only ever adds to it),
4. plus the other commands clients sent, from SLOWLOG in a third build of the same suite
   (summing commandstats would count a command a script ran twice; see `whole_build`).

    python -m benchmarks.redis_cost [--tests N]

Before (the references, measured the same way on the 2-core development machine): main
before lease windows (one lease a call, every script refreshing the TTL of up to 9 keys, load
about 5): the hot path 81.6 µs of Redis CPU a test (44.0 commands inside scripts, 14 EXPIRE,
1.001 round trips), a whole build 162.3 µs and 45.0 commands a test. Lease windows (load about
6): the hot path 25.8 µs, a whole build 62.6 µs (70.2 µs at load 12), its supervisor polling
with a status script and a transaction of 16 reads, its progress reader reading every result
at each look. The k=1 row of each run is the one-lease path on today's scripts, side by side.
Targets, checked: lease windows cost Redis at least `WINDOWS_GAIN` times less a test than one
lease a call, side by side in the run; a whole build at most `TARGET_USEC` µs a finalized
test (issue 12; 22.6 to 31 µs before a final attempt stopped writing a disposition, leases
took in their holder, and the hot keys stopped being listpacks; 12.8 to 14.7 µs after, on the
2-core development machine). The whole build's commands are listed by Redis time, and its
main thread's CPU time per test beside (with what an idle server spends in the same wall
time, its cron).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks.overhead import PYTEST_FLAGS, clean_environment, write_suite
from benchmarks.populate import node_ids
from ciqueue_gha.connection import connect
from ciqueue_gha.plugin.ahead import LeaseWindow
from ciqueue_gha.plugin.tally import WorkerTally
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import AttemptRecord, CaseRecord, QueueWorker
from ciqueue_gha.redis_server import PrivateRedis
from tests.support.drain import drain_queue

TESTS = 2000
#: Round trips of a worker outside the per-test loop: its first reserve and its release.
OUTSIDE_LOOP = 2
UPSTREAM_ROUND_TRIPS = 5
#: Issue 12's target: Redis's time per finalized test over a whole build, µs.
TARGET_USEC = 20.0
#: Whole builds timed for the scripts' time; the lowest counts.
BUILDS = 2
#: The checked target: how many times less Redis time a test windows cost than one lease a call.
WINDOWS_GAIN = 3.0
#: The reference (see the docstring): Redis CPU µs and commands inside scripts per test.
BEFORE = {"hot path": (81.6, 44.0), "whole build": (162.3, 45.0)}
#: The whole build with lease windows, before the cuts of issue 12's cheaper call.
WINDOWS_BEFORE = 62.6
#: Commands the measuring client itself sends; not the queue's.
ADMIN_COMMANDS = ("config|resetstat", "config", "info")
#: How many entries the slow log keeps while a build is timed.
SLOWLOG_ENTRIES = 1_000_000


@dataclass(frozen=True)
class Cost:
    """Commands over one measurement, per test."""

    what: str
    tests: int
    round_trips: int | None  # counted on the worker's side; None: not counted
    calls: Counter[str]  # command -> calls, from commandstats
    usec: Counter[str]  # command -> microseconds Redis spent in it, from commandstats
    cpu: float  # seconds of CPU the server's main thread used (INFO cpu)
    idle: float = 0.0  # of `cpu`: what the idle server spends in as long (its cron)
    #: Microseconds of the commands clients sent that are not script calls (SLOWLOG, in a
    #: run of its own); None: not measured.
    direct: Counter[str] | None = None

    @property
    def script_calls(self) -> int:
        return self.calls["evalsha"] + self.calls["eval"]

    @property
    def inside_scripts(self) -> int:
        """Commands a script ran: every command but the script calls (the hot path sends
        nothing else, as `round_trips` checks)."""
        return sum(self.calls.values()) - self.script_calls

    def per_test(self, count: int) -> str:
        return f"{count / self.tests:>8.2f}"


class CountingWorker:
    """Counts the commands a worker sends, each one round trip (no pipelines here): on the
    connection its scripts go out on, and through its client (anything else, and the
    fallback of a script call)."""

    def __init__(self, worker: QueueWorker) -> None:
        self.sent: Counter[str] = Counter()
        client, connection = worker.client, worker.scripts.connection
        self._execute: Callable[..., Any] = client.execute_command
        self._send_packed: Callable[..., None] = connection.send_packed_command
        client.execute_command = self._count_command  # type: ignore[method-assign]
        connection.send_packed_command = self._count_packed

    def _count_command(self, *args: Any, **options: Any) -> Any:
        self.sent[str(args[0]).lower()] += 1
        return self._execute(*args, **options)

    def _count_packed(self, command: list[bytes], *args: Any) -> None:
        for packed in command:  # *<count>, $<length>, <command name>, ...
            self.sent[packed.split(b"\r\n", 3)[2].decode().lower()] += 1
        self._send_packed(command, *args)


def server_cpu(admin: redis.Redis) -> float:
    """CPU seconds the server's main thread has used (user and system)."""
    info = admin.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def commandstats(admin: redis.Redis) -> tuple[Counter[str], Counter[str]]:
    """Calls and microseconds of each command since the last CONFIG RESETSTAT, less ours."""
    stats = admin.info("commandstats")
    calls = Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})
    usec = Counter({name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()})
    for name in ADMIN_COMMANDS:
        calls.pop(name, None)
        usec.pop(name, None)
    return calls, usec


def small_record(test: str) -> AttemptRecord:
    case = CaseRecord(nodeid=test, outcome="passed", duration=0.001, file="tests/x.py", line=1)
    return AttemptRecord(unit=test, outcome="passed", duration=0.001, cases=[case])


def hot_path(url: str, tests: int, *, windows: bool) -> tuple[Cost, Counter[str]]:
    """Drain `tests` tests with one worker, one lease a call or in windows; returns the cost
    and what the worker sent."""
    build = f"redis-cost-{'windows' if windows else 'k1'}"
    with closing(connect(url)) as admin, closing(connect(url)) as client:
        worker = QueueWorker(client, BuildKeys(build), "worker-0")
        worker.scripts.load_all()
        worker.populate(node_ids(tests))
        counter = CountingWorker(worker)
        admin.config_resetstat()
        cpu = server_cpu(admin)
        if windows:
            executed = drain_windows(worker)
        else:
            executed = drain_queue(worker, lambda lease: small_record(lease.unit))
        calls, usec = commandstats(admin)
        cpu = server_cpu(admin) - cpu
    if executed != tests:
        raise SystemExit(f"redis_cost: the worker ran {executed} of {tests} tests")
    what = "windows" if windows else "one lease a call (k=1)"
    return Cost(what, tests, sum(counter.sent.values()), calls, usec, cpu), counter.sent


def drain_windows(worker: QueueWorker) -> int:
    """The plugin's lease window, with zero-length units and no pytest; returns how many
    units it ran."""
    policy = LeaseWindow(worker, None, {}, WorkerTally())
    lease = policy.start()
    while lease is not None:
        policy.next_item({})
        lease = policy.finish(small_record(lease.unit), stopping=False)
    worker.release()
    return policy.tally.executed


def whole_build(url: str, tests: int, build: str, *, slowlog: bool = False) -> Cost:
    """`ciqueue-gha run --workers 2` on a trivial suite against the server at `url`; with
    `slowlog`, the time of the commands clients sent besides script calls, from SLOWLOG
    (every command logged: its entry names the client that sent it, and a command a script
    ran names none). Not in the same run as the scripts' time: logging the commands a
    script runs happens inside the script's time, and would overstate it."""
    with (
        tempfile.TemporaryDirectory(prefix="ciq-redis-cost-") as tmp,
        closing(connect(url)) as admin,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite, tests)
        argv = [sys.executable, "-m", "ciqueue_gha.cli", "run", "--workers", "2"]
        argv += ["--redis-url", url, "--build-id", build]
        argv += ["--junit-xml", str(Path(tmp) / "junit.xml"), "--", *PYTEST_FLAGS, "."]
        idle_rate = idle_cpu(admin)
        if slowlog:
            admin.config_set("slowlog-max-len", SLOWLOG_ENTRIES)
            admin.config_set("slowlog-log-slower-than", 0)
            admin.slowlog_reset()
        admin.config_resetstat()
        cpu, start = server_cpu(admin), time.monotonic()
        done = subprocess.run(
            argv, cwd=suite, env=clean_environment(), capture_output=True, text=True, timeout=180
        )
        calls, usec = commandstats(admin)
        cpu, wall = server_cpu(admin) - cpu, time.monotonic() - start
        direct = sent_by_clients(admin) if slowlog else None
    if done.returncode != 0:
        raise SystemExit(f"redis_cost: the build exited {done.returncode}:\n{done.stderr[-3000:]}")
    what = "whole build, run --workers 2"
    return Cost(what, tests, None, calls, usec, cpu, idle_rate * wall, direct)


def sent_by_clients(admin: redis.Redis) -> Counter[str]:
    """Microseconds of each command clients sent (not script calls, not this client's), from
    SLOWLOG; the slow log put back as it was."""
    ours = str(admin.client_info()["addr"])
    entries = admin.execute_command("SLOWLOG", "GET", SLOWLOG_ENTRIES)  # type: ignore[no-untyped-call]
    admin.config_set("slowlog-log-slower-than", 10000)
    admin.config_set("slowlog-max-len", 128)
    admin.slowlog_reset()
    if len(entries) >= SLOWLOG_ENTRIES:
        raise SystemExit("redis_cost: the slow log filled up: raise SLOWLOG_ENTRIES")
    direct: Counter[str] = Counter()
    for entry in entries:
        if isinstance(entry, dict):  # redis-py parsed it
            duration, words = entry["duration"], str(entry["command"]).split()
            client = entry.get("client_address", "")
        else:  # [id, time, duration, [words], client, name]
            duration, words, client = entry[2], entry[3], entry[4]
        name = str(words[0]).lower() if words else ""
        if not name or client in ("", "?:0", ours) or name in ("evalsha", "eval"):
            continue  # a script's own command, a script call (timed apart), or ours
        direct[name] += int(duration)
    return direct


def idle_cpu(admin: redis.Redis, seconds: float = 1.0) -> float:
    """CPU seconds a second the server spends with nothing asked of it (its cron)."""
    before = server_cpu(admin)
    time.sleep(seconds)
    return (server_cpu(admin) - before) / seconds


def breakdown(build: Cost, rows: int = 10) -> None:
    """The whole build's commands by Redis time (a script's own commands counted inside it
    too), and the share of the idle server's cron."""
    print("whole build, by command (calls and Redis µs per test; inside scripts counted twice):")
    for name, usec in build.usec.most_common(rows):
        print(f"  {name:<16} {build.calls[name] / build.tests:>8.3f} {usec / build.tests:>8.2f}")
    print(f"  {'idle cron':<16} {'':>8} {build.idle * 1e6 / build.tests:>8.2f} (included above)")


def usec_per_test(cost: Cost) -> float:
    """Redis's time per test: its main thread's CPU time (every command, the scripts' and the
    rest, and the network between). Not commandstats' sum: it counts a command run inside a
    script twice (its own usec, and the script's)."""
    return cost.cpu * 1e6 / cost.tests


def script_usec_per_test(cost: Cost) -> float:
    """The scripts' time per test, from commandstats (their inner commands included)."""
    return (cost.usec["evalsha"] + cost.usec["eval"]) / cost.tests


def commandstats_usec(build: Cost, logged: Cost) -> float:
    """Issue 12's measure, Redis's time a test by INFO commandstats: the scripts' (their own
    commands inside) in `build`, and the other commands clients sent in `logged` (a build
    of its own: see `whole_build`)."""
    assert logged.direct is not None
    return script_usec_per_test(build) + sum(logged.direct.values()) / logged.tests


def report(costs: list[Cost], sent: Counter[str], logged: Cost) -> int:
    """Print the table, before and after; 0 when windows cost `WINDOWS_GAIN` times less."""
    k1, windows, build = costs
    print(f"{k1.tests:,} tests; per test:")
    head = ("round trips", "scripts", "inside", "EXPIRE", "CPU µs")
    print(f"{'measurement':<30} " + " ".join(f"{h:>11}" for h in head))
    for name, (usec, inside) in BEFORE.items():
        print(
            f"{'before: ' + name:<30} {'-':>11} {'-':>11} {inside:>11.2f} {'-':>11} {usec:>11.1f}"
        )
    for cost in costs:
        trips = f"{cost.round_trips / cost.tests:>11.3f}" if cost.round_trips else f"{'-':>11}"
        print(
            f"{cost.what:<30} {trips} {cost.script_calls / cost.tests:>11.3f} "
            f"{cost.inside_scripts / cost.tests:>11.2f} {cost.calls['expire'] / cost.tests:>11.2f}"
            f" {usec_per_test(cost):>11.1f}"
        )
    print(
        "(scripts: script calls; inside: the commands those scripts ran in Redis; CPU: Redis's "
        "main thread, INFO cpu)"
    )
    top = ", ".join(f"{name} {n / windows.tests:.2f}" for name, n in windows.calls.most_common(8))
    print(f"windows, inside scripts, per test: {top}")
    breakdown(build)
    assert logged.direct is not None
    direct = ", ".join(
        f"{name} {usec / logged.tests:.2f}" for name, usec in logged.direct.most_common(6)
    )
    whole = commandstats_usec(build, logged)
    print(
        f"whole build, Redis µs a test by INFO commandstats: {whole:.1f} (the scripts' "
        f"{script_usec_per_test(build):.1f}, their commands inside; the other commands clients "
        f"sent, from SLOWLOG in a build of their own, {whole - script_usec_per_test(build):.1f}: "
        f"{direct})"
    )
    print(
        f"Redis CPU time per test: {usec_per_test(k1) / usec_per_test(windows):.1f}x less in "
        f"windows than one lease a call, side by side; a whole build {usec_per_test(build):.1f} µs "
        f"(before: {BEFORE['whole build'][0]} µs, with windows {WINDOWS_BEFORE} µs; hot path "
        f"{usec_per_test(windows):.1f} µs): {1e6 / usec_per_test(build):,.0f} tests/s of one "
        "Redis core"
    )
    if set(sent) != {"evalsha"} or sent["evalsha"] != windows.script_calls:
        print(f"redis_cost: FAILED, the worker sent {dict(sent)}, Redis saw {windows.script_calls}")
        return 1
    gain = usec_per_test(k1) / usec_per_test(windows)
    if gain < WINDOWS_GAIN:
        print(f"redis_cost: FAILED, windows cost only {gain:.1f}x less than one lease a call")
        return 1
    if whole > TARGET_USEC:
        print(
            f"redis_cost: FAILED, a whole build cost {whole:.1f} µs a test (target {TARGET_USEC:g})"
        )
        return 1
    print(
        f"redis_cost: ok, windows cost {gain:.1f}x less a test (target {WINDOWS_GAIN:g}x); a "
        f"whole build {whole:.1f} µs a test (target {TARGET_USEC:g})"
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=TESTS, help="tests in each measurement")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with PrivateRedis() as server:
        k1, _ = hot_path(server.url, args.tests, windows=False)
        windows, sent = hot_path(server.url, args.tests, windows=True)
        builds = [whole_build(server.url, args.tests, f"redis-cost-{n}") for n in range(BUILDS)]
        build = min(builds, key=script_usec_per_test)
        logged = whole_build(server.url, args.tests, "redis-cost-logged", slowlog=True)
    return report([k1, windows, build], sent, logged)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
