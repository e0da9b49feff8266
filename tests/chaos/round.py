"""One chaos round: its redis-server, the TCP proxy in front of it, the worker and summary
processes, and the timeline of faults (tests/chaos/plan.py) played against them.

Every process runs in a session (so a process group) of its own: a signal to the group
reaches the worker and its heartbeat helper together. Workers reach Redis through the proxy;
the summary and this driver connect directly. The driver is one loop ticking every 10 ms:
it reaps processes (noting when each exited), applies the events that are due, resets the
proxy's connections while a reset storm lasts, and starts a replacement for each worker it
killed. Whatever is still running when the round ends is killed by process group, and only
processes this round started, never reaped yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue.record import BuildRecord
from tests.chaos.clock import ClockSkewer
from tests.chaos.plan import KILL_ALL_AFTER_FINALIZED, LEASE_TIMEOUT, Event, RoundPlan
from tests.chaos.processes import Proc, RoundResult, clean_env, cli
from tests.support.redis_server import ControlledRedis
from tests.support.tcp_proxy import TcpProxy

#: The summary waits this long with no live worker; far above any fault's outage, so only
#: the round where every worker is killed sees it give up.
INACTIVE_WORKERS_TIMEOUT = 20.0
#: ... and this long in that round.
LOSE_ALL_INACTIVE_TIMEOUT = 2.0

#: Longest a round may take before it fails (with every process's output).
ROUND_LIMIT = 90.0

#: Seconds between two looks of the driver loop.
TICK = 0.01

#: Seconds between two resets of every proxied connection during a reset storm.
RESET_EVERY = 0.15


class RoundError(AssertionError):
    """The round could not be played to its end (a process hung, the queue never filled)."""


class ChaosRound:
    """Plays one `RoundPlan` over a copy of the demo suite in `folder`."""

    def __init__(self, plan: RoundPlan, folder: Path, suite: Path, skewer: ClockSkewer) -> None:
        self.plan = plan
        self.folder = folder
        self.suite = folder / "suite"
        shutil.copytree(suite, self.suite)
        (folder / "tmp").mkdir()  # the workers' TMPDIR: the demo's flaky test leaves a mark there
        self.skewer = skewer
        self.build_id = f"chaos-{plan.index}-{os.getpid()}"
        self.keys = BuildKeys(self.build_id)
        self.server = ControlledRedis(appendonly=True)
        self.proxy: TcpProxy | None = None
        self.client: redis.Redis | None = None
        self.summary: Proc | None = None
        self.workers: dict[str, Proc] = {}
        self.injected: Counter[str] = Counter()
        self.notes: list[str] = []
        self._t0 = 0.0
        self._owed = 0  # killed workers not replaced yet
        self._started = 0
        self._stopped: dict[int, Proc] = {}
        self._proxy_window: tuple[Event, int, int] | None = None  # event, accepted, dropped
        self._next_reset = 0.0

    # --- the round --------------------------------------------------------------------------

    def play(self) -> RoundResult:
        started_at = time.time()
        self.server.start()
        try:
            self.proxy = TcpProxy("127.0.0.1", self.server.port).start()
            self.client = connect(self.server.url)
            self._start_summary()
            for index in range(self.plan.workers):
                skewed = index == self.plan.skewed_worker
                self._start_worker(self.plan.skew if skewed else 0.0)
            self._wait_populated()
            self._loop()
            assert self.summary is not None and self.summary.exited_at is not None
            return RoundResult(
                plan=self.plan,
                folder=self.folder,
                build_id=self.build_id,
                started_at=started_at,
                ended_at=time.time(),
                summary_code=self.summary.popen.returncode,
                summary_exit=self.summary.exited_at,
                workers=self.workers,
                record=BuildRecord.load(self.client, self.keys),
                junit=self.folder / "merged.xml",
                injected=self.injected,
                notes=self.notes,
            )
        finally:
            self._cleanup()

    def _loop(self) -> None:
        events = sorted(self.plan.events, key=lambda event: event.at)
        limit = time.monotonic() + ROUND_LIMIT
        while True:
            self._reap()
            elapsed = self._elapsed()
            while events and self._due(events[0], elapsed):
                self._apply(events.pop(0))
            self._storm(elapsed)
            self._replace()
            if self._finished():
                return
            if time.monotonic() > limit:
                raise RoundError(f"round still running after {ROUND_LIMIT} s")
            time.sleep(TICK)

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _finished(self) -> bool:
        assert self.summary is not None
        return self.summary.exited_at is not None and not any(
            proc.exited_at is None for proc in self.workers.values()
        )

    def _note(self, text: str) -> None:
        self.notes.append(f"{self._elapsed():6.2f}s {text}")

    # --- processes --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        with (
            (self.folder / f"{name}.out").open("wb") as out,
            (self.folder / f"{name}.err").open("wb") as err,
        ):
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return Proc(name, popen)

    def _start_summary(self) -> None:
        inactive = LOSE_ALL_INACTIVE_TIMEOUT if self.plan.lose_all else INACTIVE_WORKERS_TIMEOUT
        argv = [
            *cli(), "summary",
            "--build-id", self.build_id,
            "--junit-xml", str(self.folder / "merged.xml"),
            "--report-timeout", "60",
            "--inactive-workers-timeout", str(inactive),
            "--queue-init-timeout", "30",
        ]  # fmt: skip
        env = {**clean_env(), "CIQUEUE_REDIS_URL": self.server.url}
        self.summary = self._spawn("summary", argv, env, self.folder)

    def _start_worker(self, skew: float = 0.0) -> Proc:
        assert self.proxy is not None
        name = f"w{self.plan.index}-{self._started}"
        self._started += 1
        argv = [
            *cli(), "worker",
            "--worker-id", name,
            "--build-id", self.build_id,
            "--lease-timeout", str(LEASE_TIMEOUT),
            "--max-requeues", "1",
            "--requeue-tolerance", "0.1",
            "--queue-init-timeout", "30",
            "--junit-xml", str(self.folder / f"{name}.xml"),
            "--", "pytest", "-q",
        ]  # fmt: skip
        env = {
            **clean_env(),
            "CIQUEUE_REDIS_URL": self.proxy.url(),
            "TMPDIR": str(self.folder / "tmp"),
        }
        if self.plan.demo_fail:
            env["DEMO_FAIL"] = "1"
        if skew:
            env.update(self.skewer.env(skew))
        proc = self._spawn(name, argv, env, self.suite)
        proc.skew = skew
        self.workers[name] = proc
        self._note(f"started {name}" + (f" (clock {skew:+.0f} s)" if skew else ""))
        return proc

    def _reap(self) -> None:
        assert self.summary is not None
        for proc in [self.summary, *self.workers.values()]:
            if proc.exited_at is None and proc.popen.poll() is not None:
                proc.exited_at = time.time()
                self._note(f"{proc.name} exited {proc.popen.returncode}")

    def _replace(self) -> None:
        assert self.summary is not None
        if self._owed and self._proxy_window is None and self.summary.exited_at is None:
            self._owed -= 1
            self._start_worker()

    def _signal(self, proc: Proc, signum: signal.Signals) -> bool:
        """Send `signum` to the group of `proc`, which this round started and has not reaped."""
        if proc.popen.returncode is not None:
            return False
        try:
            os.killpg(proc.popen.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def _wait_populated(self) -> None:
        assert self.client is not None
        limit = time.monotonic() + 30
        while not self.client.exists(self.keys.key("ready")):
            self._reap()
            if time.monotonic() > limit or all(p.exited_at for p in self.workers.values()):
                raise RoundError("no worker populated the queue")
            time.sleep(TICK)
        self._t0 = time.monotonic()
        self._note("queue populated")

    def _cleanup(self) -> None:
        procs = [*self.workers.values(), *([self.summary] if self.summary else [])]
        for proc in procs:
            # Unreaped, so its pid (and group id) cannot belong to anyone else yet.
            if proc.popen.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        if self.client is not None:
            self.client.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.server.stop()

    # --- faults -----------------------------------------------------------------------------

    def _due(self, event: Event, elapsed: float) -> bool:
        if event.at > elapsed:
            return False
        if event.action != "kill_all":
            return True
        assert self.client is not None
        return int(self.client.hlen(self.keys.key("results"))) >= KILL_ALL_AFTER_FINALIZED

    def _apply(self, event: Event) -> None:
        handler = {
            "kill": self._kill,
            "kill_all": self._kill_all,
            "stop": self._stop,
            "cont": self._cont,
            "redis_restart": self._restart_redis,
            "proxy_on": self._proxy_on,
            "proxy_off": self._proxy_off,
        }[event.action]
        handler(event)

    def _holders(self) -> set[str]:
        assert self.client is not None
        leases: list[str] = self.client.hvals(self.keys.key("leases"))  # type: ignore[assignment]
        return {entry.partition(" ")[2] for entry in leases}  # "<lease id> <holder>"

    def _pick(self, event: Event, candidates: list[Proc]) -> Proc | None:
        """A candidate holding a lease when one does (so the fault strikes mid-test)."""
        holders = self._holders()
        preferred = [proc for proc in candidates if proc.name in holders] or candidates
        return preferred[int(event.pick * len(preferred))] if preferred else None

    def _kill(self, event: Event) -> None:
        target = self._pick(event, [proc for proc in self.workers.values() if proc.live])
        if target is None:
            self._note("kill: no live worker left")
            return
        mid_test = target.name in self._holders()
        if self._signal(target, signal.SIGKILL):
            target.killed = True
            self._owed += 1
            self.injected["kill"] += 1
            self.injected["kill mid-test"] += mid_test
            self._note(f"SIGKILL {target.name}" + (" (holding a lease)" if mid_test else ""))

    def _kill_all(self, event: Event) -> None:
        for proc in self.workers.values():
            if proc.live and self._signal(proc, signal.SIGKILL):
                proc.killed = True
                self.injected["kill"] += 1
                self.injected["kill all"] += 1
                self._note(f"SIGKILL {proc.name} (every worker, none replaced)")

    def _stop(self, event: Event) -> None:
        candidates = [p for p in self.workers.values() if p.live and not p.stopped]
        target = self._pick(event, candidates)
        if target is None or not self._signal(target, signal.SIGSTOP):
            self._note("stop: no live worker left")
            return
        target.stopped = True
        self._stopped[event.pair] = target
        self.injected["stop"] += 1
        self._note(f"SIGSTOP {target.name}")

    def _cont(self, event: Event) -> None:
        target = self._stopped.pop(event.pair, None)
        if target is None:
            return
        target.stopped = False
        if self._signal(target, signal.SIGCONT):
            self._note(f"SIGCONT {target.name}")

    def _restart_redis(self, event: Event) -> None:
        assert self.client is not None
        self.server.restart(empty=False)
        if not self.client.exists(self.keys.key("ready")):
            raise RoundError("Redis came back from its append-only file without the queue")
        self.injected["redis_restart"] += 1
        self._note("redis-server restarted from its append-only file")

    def _proxy_on(self, event: Event) -> None:
        assert self.proxy is not None
        if not any(proc.live for proc in self.workers.values()):
            return
        self._proxy_window = (event, self.proxy.accepted, self.proxy.dropped_replies)
        if event.variant == "pause":
            self.proxy.pause()
        else:
            self.proxy.drop_next_reply()
            self._next_reset = event.at
        self._note(f"proxy {event.variant} begins")

    def _storm(self, elapsed: float) -> None:
        window = self._proxy_window
        if window is None or window[0].variant != "reset" or elapsed < self._next_reset:
            return
        assert self.proxy is not None
        self.proxy.reset()
        self._next_reset = elapsed + RESET_EVERY

    def _proxy_off(self, event: Event) -> None:
        assert self.proxy is not None
        if self._proxy_window is None:
            return
        _, accepted, dropped = self._proxy_window
        self._proxy_window = None
        self.proxy.resume()
        reconnected = self.proxy.accepted - accepted
        lost = self.proxy.dropped_replies - dropped
        self._note(f"proxy {event.variant} ends: {reconnected} reconnections, {lost} replies lost")
        # A reset storm counts when clients had to reconnect; a pause, when anyone was waiting.
        if event.variant == "pause" or reconnected > 0:
            self.injected["proxy"] += 1
            self.injected[f"proxy {event.variant}"] += 1
