"""The worker's side of its heartbeat helper (heartbeat.py, which says the protocol): start
it, tell it which leases the worker holds, learn which it gave back (overrun.py), stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict

from . import crash
from .overrun import StartLock, read_given
from .record import AttemptRecord
from .settings import HelperConfig
from .worker import Lease


class HeartbeatProcess:
    """The worker's side of the helper: start it, tell it about leases, stop it; a helper
    that died is started again (and says so) at the next unit."""

    def __init__(self, config: HelperConfig) -> None:
        self.config = config
        self.restarts = 0
        self._window: tuple[Lease, ...] = ()  # the leases of the last `hold`
        self._unstarted: tuple[int, float | None] = (0, None)  # and what it said of them
        self._told = False  # whether the helper running now was sent them
        lock_fd, path = tempfile.mkstemp(prefix="ciqueue-start-")
        os.unlink(path)  # the descriptor is all either side needs
        self._lock = StartLock(lock_fd)
        self._given: int | None = None  # the pipe of leases given back, its reading end
        self._gave: list[Lease] = []  # given back by a helper that since died
        self._start()

    def _start(self) -> None:
        # A pidfd on this process, handed to the helper: it watches the worker from its first
        # moment, so a test that ends the worker before the helper is up is still seen, with
        # its exit status (a pidfd the helper opened itself would come too late then).
        pidfd = crash.watch(os.getpid())
        given, given_w = os.pipe()
        os.set_blocking(given, False)
        lock = self._lock.fd
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ciqueue_gha.queue.heartbeat"],
                stdin=subprocess.PIPE,
                pass_fds=(lock, given_w) if pidfd is None else (pidfd, lock, given_w),
            )
        finally:
            for fd in (given_w,) if pidfd is None else (pidfd, given_w):
                os.close(fd)
        if self._given is not None:  # a helper started again: what the last one gave back
            self._gave += read_given(self._given)
            os.close(self._given)
        self._given = given
        assert self.process.stdin is not None
        self._pipe = self.process.stdin.fileno()
        fds = {"pidfd": pidfd, "lock": lock, "given": given_w}  # the helper's, same numbers
        self._send({"connect": asdict(self.config), "worker": os.getpid(), **fds})

    def _send(self, message: dict[str, object]) -> None:
        # Unbuffered writes of the whole line (one, short of a huge test id): a message a test.
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self._pipe, data) :]

    def hold(
        self,
        running: Lease,
        *others: Lease,
        finished: Sequence[tuple[Lease, AttemptRecord]] = (),
        unstarted: int = 0,
        overrun: float | None = None,
    ) -> None:
        """Keep `running` and the `others` of the window alive from now on; the next call
        replaces them. `finished`: attempts run since the last call, not acknowledged yet;
        the first `unstarted` others are held and not started, given back past `overrun`."""
        self._window, self._unstarted = (running, *others), (unstarted, overrun)
        self._tell(running, finished, changed=True)

    def starting(self) -> AbstractContextManager[None]:
        """Hold while starting a unit: the helper gives nothing back meanwhile."""
        return self._lock.held()

    def given_back(self) -> list[Lease]:
        """The leases the helper gave back since the last call (hold `starting`)."""
        gave, self._gave = self._gave, []
        return gave + ([] if self._given is None else read_given(self._given))

    def run(self, running: Lease, finished: Sequence[tuple[Lease, AttemptRecord]] = ()) -> None:
        """Another unit of the window of the last `hold` started."""
        self._tell(running, finished, changed=False)

    def _tell(
        self, running: Lease, finished: Sequence[tuple[Lease, AttemptRecord]], *, changed: bool
    ) -> None:
        if self.process.poll() is not None:
            self._restart()
        try:
            self._send(self._message(running, finished, changed=changed))
        except BrokenPipeError:  # died since: once more, with a new one (told every lease)
            self._restart()
            self._send(self._message(running, finished, changed=changed))

    def _message(
        self, running: Lease, finished: Sequence[tuple[Lease, AttemptRecord]], *, changed: bool
    ) -> dict[str, object]:
        message: dict[str, object]
        if changed or not self._told:  # a new helper knows no lease yet
            others = (lease for lease in self._window if lease != running)
            message = {"leases": [[lease.unit, lease.id] for lease in (running, *others)]}
            if changed:  # (a new helper told of another unit: nothing to give back)
                message["unstarted"], message["overrun"] = self._unstarted
            self._told = True
        else:
            message = {"running": [running.unit, running.id]}
        if finished:
            message["finished"] = [[lease.unit, lease.id, rec.to_json()] for lease, rec in finished]
        return message

    def _restart(self) -> None:
        code = self.process.wait()
        with suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        self.restarts += 1
        self._told = False
        print(
            f"ciqueue-gha: WARNING: the heartbeat helper exited (code {code}); starting a new one",
            file=sys.stderr,
            flush=True,
        )
        self._start()

    def close(self, *, at_once: bool = False) -> None:
        """Stop the helper: it ends when told the worker ends normally (it records nothing),
        or `at_once` (Redis lost: it may be waiting on a call that will never be answered)."""
        if self.process.stdin is not None:
            with suppress(OSError):
                self._send({"close": True})
            with suppress(OSError):
                self.process.stdin.close()
        if at_once:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with suppress(OSError):  # closed by an earlier call
            os.close(self._lock.fd)
        if self._given is not None:
            os.close(self._given)
            self._given = None
