"""The worker's side of its heartbeat helper (heartbeat.py, which says the protocol): start
it, tell it which leases the worker holds, stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict

from . import crash
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
        self._told = False  # whether the helper running now was sent them
        self._start()

    def _start(self) -> None:
        # A pidfd on this process, handed to the helper: it watches the worker from its first
        # moment, so a test that ends the worker before the helper is up is still seen, with
        # its exit status (a pidfd the helper opened itself would come too late then).
        pidfd = crash.watch(os.getpid())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ciqueue_gha.queue.heartbeat"],
                stdin=subprocess.PIPE,
                pass_fds=() if pidfd is None else (pidfd,),
            )
        finally:
            if pidfd is not None:
                os.close(pidfd)
        assert self.process.stdin is not None
        self._pipe = self.process.stdin.fileno()
        self._send({"connect": asdict(self.config), "worker": os.getpid(), "pidfd": pidfd})

    def _send(self, message: dict[str, object]) -> None:
        # Unbuffered writes of the whole line (one, short of a huge test id): a message a test.
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self._pipe, data) :]

    def hold(
        self, running: Lease, *others: Lease, finished: Sequence[tuple[Lease, AttemptRecord]] = ()
    ) -> None:
        """Keep `running` and the `others` of the window alive from now on; the next call
        replaces them. `finished`: attempts run since the last call, not acknowledged yet."""
        self._window = (running, *others)
        self._tell(running, finished, changed=True)

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
        except BrokenPipeError:  # died since: once more, with a new one
            self._restart()
            self._send(self._message(running, finished, changed=True))

    def _message(
        self, running: Lease, finished: Sequence[tuple[Lease, AttemptRecord]], *, changed: bool
    ) -> dict[str, object]:
        message: dict[str, object]
        if changed or not self._told:  # a new helper knows no lease yet
            others = (lease for lease in self._window if lease != running)
            message = {"leases": [[lease.unit, lease.id] for lease in (running, *others)]}
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
