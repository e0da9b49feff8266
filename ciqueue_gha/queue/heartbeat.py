"""The heartbeat helper: a separate process that keeps the worker's lease alive.

It runs outside the worker's interpreter, so a test that holds the GIL (or blocks in C)
cannot starve its heartbeats. The worker talks to it over a pipe, one JSON line at a time:

    {"connect": {...}}                    first line: where Redis is and whose leases to keep
    {"leases": [[test, id], ...]}         a test started under the first lease; the others
                                          are reserved behind it (prefetched)

A finished test sends nothing (a message per test is a wake-up of this process, on the hot
path): the next test's message replaces the leases, and a lease acknowledged in between
fails its next heartbeat and is dropped. Each heartbeat also keeps alive the worker's latest
grant (heartbeat.lua), which covers the lease an acknowledge in flight reserved before the
worker has read its reply, and so before it could tell this helper.

The helper stops heartbeating after max-test-duration of one test, so a hung test (and
what was reserved behind it) is reclaimed,
and exits when the pipe closes or its parent changes: when its worker dies, so do its
heartbeats. The Redis URL travels over the pipe, never on the command line, so `ps` never
shows a password.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import IO

from ..connection import connect
from ..errors import QueueStateLost
from ..fastexit import exit_now
from ..keys import BuildKeys
from . import claim
from .settings import QueueSettings
from .worker import Lease, QueueWorker


@dataclass(frozen=True)
class HelperConfig:
    redis_url: str
    verify_tls: bool
    build_id: str
    attempt: int
    worker_id: str
    lease_timeout: float
    heartbeat_interval: float
    max_test_duration: float
    #: The token of the worker's claim on its id (claim.py), kept alive here too.
    claim_token: str = ""


class HeartbeatProcess:
    """The worker's side of the helper: start it, tell it about leases, stop it."""

    def __init__(self, config: HelperConfig) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ciqueue_gha.queue.heartbeat"], stdin=subprocess.PIPE
        )
        assert self.process.stdin is not None
        self._pipe = self.process.stdin.fileno()
        self._send({"connect": asdict(config)})

    def _send(self, message: dict[str, object]) -> None:
        # Unbuffered writes of the whole line (one, short of a huge test id): a message a test.
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self._pipe, data) :]

    def hold(self, running: Lease, *reserved: Lease) -> None:
        """Keep `running` and the `reserved` leases behind it alive from now on; the next
        call replaces them (see the module's docstring)."""
        self._send({"leases": [[lease.test, lease.id] for lease in (running, *reserved)]})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _read_message(stream: IO[bytes]) -> dict[str, object] | None:
    line = stream.readline()
    return json.loads(line) if line else None


def serve(stream: IO[bytes]) -> None:
    """The helper's loop: heartbeat the current lease every interval until the pipe closes.

    `stream` must be unbuffered: select() sees only what the pipe still holds, so a line
    read ahead into a buffer (the first lease, sent right behind "connect") would go unseen
    and its lease unheartbeated until the next message.
    """
    first = _read_message(stream)
    if first is None:
        return
    config = HelperConfig(**first["connect"])  # type: ignore[arg-type]
    settings = QueueSettings(
        lease_timeout=config.lease_timeout,
        heartbeat_interval=config.heartbeat_interval,
        max_test_duration=config.max_test_duration,
    )
    client = connect(config.redis_url, verify_tls=config.verify_tls)
    worker = QueueWorker(
        client, BuildKeys(config.build_id, config.attempt), config.worker_id, settings
    )
    if config.claim_token:
        claim.keep_alive(
            client,
            worker.keys,
            config.worker_id,
            config.claim_token,
            config.lease_timeout,
            settings.heartbeat_every,
        )
    parent = os.getppid()
    leases: list[Lease] = []
    # When each lease was last given a deadline: by this helper's beat, else (a lease new to
    # it) by the reserve that granted it just before the worker sent it. A beat is due one
    # interval after the oldest, never at once: a test a few milliseconds long costs no
    # heartbeat, and a lease reserved ahead keeps its beat time from the test before.
    refreshed: dict[Lease, float] = {}
    started = 0.0
    while os.getppid() == parent:
        wait = settings.heartbeat_every
        if leases:
            next_beat = min(refreshed[lease] for lease in leases) + settings.heartbeat_every
            wait = max(0.0, next_beat - time.monotonic())
        ready, _, _ = select.select([stream], [], [], wait)
        if ready:
            message = _read_message(stream)
            if message is None:
                return
            pairs: list[list[object]] = message["leases"]  # type: ignore[assignment]
            leases = [Lease(str(test), int(str(lease))) for test, lease in pairs]
            started = time.monotonic()
            if leases:
                refreshed = {lease: refreshed.get(lease, started) for lease in leases}
            continue
        if not leases:
            continue
        if time.monotonic() - started > settings.heartbeat_for:
            leases = []  # hung: let the leases run out so other workers reclaim the tests
            continue
        # A lease taken over is no longer ours to keep alive; none is, once the build's state
        # is lost (the worker learns so at its own next call, and says it in one line).
        try:
            leases = [lease for lease in leases if worker.heartbeat(lease)]
        except QueueStateLost:
            leases = []
        refreshed = dict.fromkeys(leases, time.monotonic())


def main() -> None:
    # Ctrl-C reaches the whole process group; the worker decides what happens next.
    with suppress(KeyboardInterrupt), open(sys.stdin.fileno(), "rb", buffering=0) as stdin:
        serve(stdin)
    exit_now(0)  # the worker waits for this process to end


if __name__ == "__main__":
    main()
