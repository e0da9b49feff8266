"""The heartbeat helper: a separate process that keeps the worker's lease alive.

It runs outside the worker's interpreter, so a test that holds the GIL (or blocks in C)
cannot starve its heartbeats. The worker talks to it over a pipe, one JSON line at a time:

    {"connect": {...}, "worker": pid,     first line: where Redis is, whose leases to keep,
     "pidfd": fd, "lock": fd,             the worker's pid (it may be gone already) and the
     "given": fd}                         pidfd on it the helper inherited (null: none); the
                                          start lock and the pipe of leases given back
                                          (overrun.py; null: none)
    {"leases": [[unit, id], ...],         a unit started under the first lease; the others:
     "finished": [[unit, id, record]],    the rest of the window (held, or run and not yet
     "unstarted": n, "overrun": s}        acknowledged: their attempts, once, in "finished");
                                          the first n of them held and not started, given
                                          back if the unit runs past s seconds (overrun.py)
    {"running": [unit, id],               a unit started, the window's leases the same as
     "finished": [...]}                   the last message's (most units: a window of 128
                                          leases is not sent again for each)
    {"close": true}                       last line: the worker ends normally

A message per unit started (a wake-up of this process, on the hot path) replaces the leases; a
lease acknowledged in between fails its next heartbeat and is dropped. One heartbeat call
extends the whole window and the worker's latest grant (heartbeat.lua): the leases an
acknowledge in flight reserved before the worker could tell this helper.

The helper survives Redis errors: a failed heartbeat is retried with backoff, and while
heartbeats fail for longer than the lease timeout it says once, on the worker's log, that the
worker's leases may have expired (its acknowledges are fenced: a lease lost is a stale attempt,
never a second result). A unit that runs past max-test-duration is recorded as an error
(timeout) and its worker stopped (hang.py). A worker that dies without the close message
(os._exit, SIGKILL, a segfault) while a unit runs has that unit recorded as an error by its
helper, which gives back the rest of its window and the worker's id, and exits (crash.py):
when its worker dies, so do its heartbeats. Before either, it acknowledges the "finished"
attempts the worker had not, so they never run twice. The worker restarts a helper that died.
The Redis URL travels over the pipe, never on the command line, so `ps` never shows a password.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial

from .. import defaults
from ..cluster import connect_build
from ..errors import QueueStateLost
from ..fastexit import exit_now
from ..protocol.keys import BuildKeys
from . import claim, crash, hang
from .overrun import StartLock, Unstarted, send_given
from .pipe import PipeLines
from .settings import HelperConfig, QueueSettings
from .worker import Lease, QueueWorker

#: A failed heartbeat is tried again after this many seconds, doubling up to the interval.
RETRY_FIRST = 0.05


def _read_message(stream: PipeLines) -> dict[str, object] | None:
    line = stream.readline()
    return None if line is None else json.loads(line)


def _say(line: str) -> None:
    # The worker's stderr, which the helper shares: the worker's log.
    print(f"ciqueue-gha: {line}", file=sys.stderr, flush=True)


@dataclass
class Helper:
    """The helper's state: the worker it watches, the leases it keeps alive (the first the
    running unit's), when each was last given a deadline, when the running unit started,
    and how its heartbeats fare."""

    worker: QueueWorker
    settings: QueueSettings
    config: HelperConfig
    parent: int
    #: A pidfd on the worker (crash.watch), None where there are none.
    pidfd: int | None = None
    #: The leases it keeps alive, each with when it was last given a deadline (a lease new
    #: to it: when it came). A beat is due one interval after the oldest (`oldest`): a test a
    #: few milliseconds long costs no heartbeat. A dict: a message a unit costs O(1).
    leases: dict[Lease, float] = field(default_factory=dict)
    oldest: float = 0.0
    #: The lease of the unit the worker runs, until it is seen acknowledged (or taken over).
    running: Lease | None = None
    #: Attempts the worker ran and has not acknowledged yet (record JSON), by lease.
    finished: dict[Lease, str] = field(default_factory=dict)
    started: float = 0.0
    unstarted: Unstarted = field(default_factory=Unstarted)
    #: The start lock and the pipe of leases given back (overrun.py); None: never give back.
    lock: StartLock | None = None
    given_fd: int | None = None
    last_ok: float = field(default_factory=time.monotonic)
    failures: int = 0
    warned: bool = False
    state_lost: bool = False

    def wait(self) -> float:
        """Seconds until the next beat (or the next retry of a failed one, or a give-back)."""
        if not self.leases:
            return self.settings.heartbeat_every
        if self.failures:
            pause: float = RETRY_FIRST * 2 ** (self.failures - 1)
            return min(pause, self.settings.heartbeat_every)
        beat = max(0.0, self.oldest + self.settings.heartbeat_every - time.monotonic())
        overrun = self.overrun_in()
        return beat if overrun is None else min(beat, overrun)

    def overrun_in(self) -> float | None:
        """Seconds until the unstarted leases are due to go back (None: never)."""
        return None if self.lock is None else self.unstarted.due_in(self.started)

    def take(self, message: dict[str, object]) -> None:
        self.started = time.monotonic()
        if "running" in message:  # the same window, another unit of it started
            started: list[object] = message["running"]  # type: ignore[assignment]
            self.running = Lease(str(started[0]), int(str(started[1])))
            self.unstarted.started(self.running)
        else:
            pairs: list[list[object]] = message["leases"]  # type: ignore[assignment]
            told = [Lease(str(unit), int(str(lease))) for unit, lease in pairs]
            self.leases = {lease: self.leases.get(lease, self.started) for lease in told}
            self.oldest = min(self.leases.values(), default=self.started)
            self.running = told[0] if told else None
            self.finished = {k: v for k, v in self.finished.items() if k in self.leases}
            held = told[1 : 1 + int(str(message.get("unstarted", 0)))]
            overrun = message.get("overrun")
            self.unstarted.told(held, None if overrun is None else float(str(overrun)))
        runs: list[list[object]] = message.get("finished", [])  # type: ignore[assignment]
        for unit, lease, text in runs:
            ran = Lease(str(unit), int(str(lease)))
            if ran in self.leases:
                self.finished[ran] = str(text)

    def due(self) -> None:
        """Beat, or deal with a unit hung past max-test-duration."""
        if not self.leases or self.state_lost:
            return
        if time.monotonic() - self.started > self.settings.heartbeat_for:
            self.finish_hung()
            return
        try:
            # One call for the whole window; a lease taken over is no longer ours to keep alive.
            extended = self.worker.heartbeat_all(list(self.leases))
            kept = [lease for lease, ok in zip(self.leases, extended, strict=True) if ok]
        except QueueStateLost as exc:
            # Nothing left to keep alive, now or for any unit after: the worker learns it too
            # at its next call, and exits 4.
            _say(f"heartbeats stopped: {exc}")
            self.state_lost = True
            self.leases, self.running = {}, None
            return
        except Exception as exc:  # Redis down, out of memory, ...: keep trying, never die
            self.failed(exc)
            return
        if self.warned:
            _say("heartbeats reach Redis again")
        self.failures, self.warned, self.last_ok = 0, False, time.monotonic()
        self.leases, self.oldest = dict.fromkeys(kept, self.last_ok), self.last_ok
        self.running = self.running if self.running in self.leases else None
        self.finished = {k: v for k, v in self.finished.items() if k in self.leases}

    def give_back(self, quiet: Callable[[], bool]) -> None:
        """The running unit overran: give back the unstarted leases but the first, holding
        the start lock, unless the worker said something meanwhile (`quiet` false: another
        unit may have started)."""
        assert self.lock is not None and self.given_fd is not None
        with self.lock.held():
            if not quiet():
                return
            self.unstarted.given = True  # once a unit, whatever Redis says
            leases = self.unstarted.to_give()
            try:
                back = set(self.worker.give_back(leases))
            except Exception as exc:  # Redis down, state lost: they wait for the unit instead
                _say(
                    f"WARNING: could not give back the tests held behind a long one: {_reason(exc)}"
                )
                return
            given = [lease for lease in leases if lease.unit in back]
            send_given(self.given_fd, given)
            for lease in given:
                self.leases.pop(lease, None)
            self.unstarted.leases = self.unstarted.leases[:1]

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        failing_for = time.monotonic() - self.last_ok
        if not self.warned and failing_for >= self.settings.lease_timeout:
            self.warned = True
            _say(
                f"WARNING: heartbeats have failed for {failing_for:.1f} s ({_reason(exc)}): this "
                "worker's leases may have expired, and another worker may take its test over"
            )

    def finish_hung(self) -> None:
        """The running unit passed max-test-duration: record it as an error (timeout), give
        the rest of the window back, and stop the worker stuck in it (hang.py)."""
        running, self.leases, self.running = self.running, {}, None
        ran_for = time.monotonic() - self.started
        if running is None:  # taken over while the worker was stuck: not ours to record
            return
        limit = self.settings.heartbeat_for
        try:
            # Not ours any more (finished meanwhile, or taken over while this worker was
            # stopped): nothing to record, and a timeout must not become another's attempt.
            self.settle_finished()
            if not self.worker.heartbeat(running):
                return
            stack = hang.read_stack(self.parent, self.config.stack_file)
            started_at = self.worker.now() - ran_for
            record = hang.timeout_record(running.unit, limit, started_at, ran_for, stack)
            disposition, _ = self.worker.acknowledge(running, record, reserve_next=False)
            if disposition != "final":  # the worker finished it after all, or lost it
                return
            self.worker.release()
        except Exception as exc:
            # The leases run out instead, and the unit goes to another worker.
            _say(f"WARNING: could not record {running.unit} as hung: {str(exc).splitlines()[0]}")
            return
        _say(
            f"{running.unit} ran longer than --max-test-duration ({limit:g} s): recorded as an "
            "error (timeout); the tests this worker held go back to the queue"
            + ("; this worker stops" if self.config.stack_file else "")
        )
        if self.config.stack_file:
            hang.stop_worker(self.parent)

    def outlive(self) -> None:
        """The worker ended without the close message. Once it is gone (not merely closed
        the pipe), record the unit it ran as an error, and give back the rest of its window
        (held, or run and not acknowledged: those run again elsewhere) and its worker id.
        A Redis error is tried again for up to a lease timeout: past it the leases run out,
        and their units go to another worker."""
        how = crash.wait_end(self.parent, self.pidfd)
        if how is None or self.state_lost:
            return
        running, ran_for = self.running, time.monotonic() - self.started
        until = time.monotonic() + self.settings.lease_timeout
        retry = partial(crash.retrying, until=until)
        recorded = False
        try:
            # Not ours any more (acknowledged before the worker died, or taken over): nothing
            # to record. The beat also keeps the lease from running out while this records.
            retry(self.settle_finished)
            if running is not None and retry(partial(self.worker.heartbeat, running)):
                started_at = self.worker.now() - ran_for
                record = crash.crash_record(running.unit, how, started_at, ran_for)
                ack = partial(self.worker.acknowledge, running, record, reserve_next=False)
                recorded = retry(lambda: ack()[0]) == "final"
            retry(self._give_back)
        except Exception as exc:  # Redis down for a lease timeout, queue state lost, ...
            _say(
                f"WARNING: the worker ended ({how}), and its helper could not reach the queue "
                f"({_reason(exc)}): its leases run out instead"
            )
            return
        if running is not None and recorded:
            _say(
                f"{running.unit} ended the worker ({how}): recorded as an error; the units "
                "this worker held go back to the queue"
            )

    def settle_finished(self) -> None:
        """Acknowledge the attempts the worker ran and had not acknowledged: it cannot now."""
        crash.settle(self.worker, self.finished)
        self.finished = {}

    def _give_back(self) -> None:
        self.worker.release()
        if self.config.claim_token:
            worker_id = self.config.worker_id
            held = claim.Claim(worker_id, worker_id, self.config.claim_token)
            claim.release(self.worker.client, self.worker.keys, held)


def _reason(exc: Exception) -> str:
    # redis-py's messages name host and port, never the URL (its password).
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}"


def serve(stream: PipeLines) -> None:
    """The helper's life: heartbeat the worker's leases until it ends; if it ended without
    the close message, act for it (`Helper.outlive`)."""
    first = _read_message(stream)
    if first is None:
        return
    config = HelperConfig(**first["connect"])  # type: ignore[arg-type]
    parent = int(str(first.get("worker") or os.getppid()))
    pidfd = first.get("pidfd")
    helper = _start(config, parent, pidfd if isinstance(pidfd, int) else crash.watch(parent))
    lock, given = first.get("lock"), first.get("given")
    if isinstance(lock, int) and isinstance(given, int):
        helper.lock, helper.given_fd = StartLock(lock), given
    if not _follow(stream, helper):
        helper.outlive()


def _start(config: HelperConfig, parent: int, pidfd: int | None) -> Helper:
    settings = QueueSettings(
        lease_timeout=config.lease_timeout,
        heartbeat_interval=config.heartbeat_interval,
        max_test_duration=config.max_test_duration,
    )
    # No retries inside a call: this loop retries, and reads the pipe in between. A reply may
    # take half the lease (a slow one on a loaded machine is not a dead one), so a second try
    # still comes within the lease.
    keys = BuildKeys(config.build_id, config.attempt)
    client = connect_build(
        config.redis_url,
        keys,
        verify_tls=config.verify_tls,
        retry_budget=0,
        socket_timeout=min(defaults.SOCKET_TIMEOUT, config.lease_timeout / 2),
    )
    worker = QueueWorker(client, keys, config.worker_id, settings)
    if config.claim_token:
        claim.keep_alive(
            client,
            keys,
            config.worker_id,
            config.claim_token,
            config.lease_timeout,
            settings.heartbeat_every,
        )
    return Helper(worker, settings, config, parent, pidfd)


def _follow(stream: PipeLines, helper: Helper) -> bool:
    """Heartbeat the current leases every interval until the worker ends: True if it said
    so (the close message), False if it died (the pipe closed, the pidfd readable, or this
    process's parent changed). What the pipe holds is read first: a worker that died at
    once may have sent its first leases before."""
    watched = [stream.fd] + ([] if helper.pidfd is None else [helper.pidfd])
    while True:
        ready = [stream.fd] if stream.pending() else []
        if not ready:
            ready, _, _ = select.select(watched, [], [], helper.wait())
        if watched[0] in ready:
            message = _read_message(stream)
            if message is None:
                return False
            if "close" in message:
                return True
            helper.take(message)
        elif ready or os.getppid() != helper.parent:
            return False
        elif helper.overrun_in() == 0.0:
            helper.give_back(lambda: not stream.pending() and not _readable(stream.fd))
        else:
            helper.due()


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def main() -> None:
    # Ctrl-C reaches the whole process group; the worker decides what happens next.
    with suppress(KeyboardInterrupt):
        serve(PipeLines(sys.stdin.fileno()))
    exit_now(0)  # the worker waits for this process to end


if __name__ == "__main__":
    main()
