"""A window's unstarted leases, given back when the unit that runs overruns.

A worker holds a window of leases ahead, sized to cover a little work. When the unit it runs
takes far longer (its duration unknown, or wrong), the units held behind it wait while
another worker may be idle. Its heartbeat helper, outside the test, gives them back to the
head of the queue (give_back.lua) once the unit has run `overrun` seconds: all but the first,
which pytest was told runs next (its fixtures are kept for it). The helper tells the worker
on a pipe of its own (`send_given`, `read_given`). A lock keeps the two apart (`StartLock`):
the worker holds it while it drops what was given back, starts its next unit and tells the
helper; the helper gives back only while holding it, with no message from the worker unread
(one would say that another unit started).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from .worker import Lease


class StartLock:
    """A POSIX record lock on a file the worker and its helper share (`fcntl.lockf`: held by a
    process, so the helper, given the same descriptor, still excludes the worker)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @contextmanager
    def held(self) -> Iterator[None]:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)


@dataclass
class Unstarted:
    """The helper's view of the leases the worker holds and has not started, in order."""

    leases: list[Lease] = field(default_factory=list)
    overrun: float | None = None  # seconds the running unit may run before they go back
    given: bool = False  # given back already, for the unit that runs

    def told(self, leases: list[Lease], overrun: float | None) -> None:
        self.leases, self.overrun, self.given = leases, overrun, False

    def started(self, lease: Lease) -> None:
        """`lease`, the first held, started (a message a unit: not a pass over the rest)."""
        if self.leases and self.leases[0] == lease:
            del self.leases[0]
        else:
            self.leases = [held for held in self.leases if held != lease]
        self.given = False

    def due_in(self, started: float) -> float | None:
        """Seconds until a give-back is due (0: now); None: none will be."""
        if self.overrun is None or self.given or len(self.leases) < 2:
            return None
        return max(0.0, started + self.overrun - time.monotonic())

    def to_give(self) -> list[Lease]:
        return self.leases[1:]


def send_given(fd: int, leases: list[Lease]) -> None:
    data = (json.dumps([[lease.unit, lease.id] for lease in leases]) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def read_given(fd: int) -> list[Lease]:
    """The leases the helper gave back since the last read (the pipe is non-blocking)."""
    data = b""
    with suppress(BlockingIOError):
        while chunk := os.read(fd, 1 << 16):
            data += chunk
    return [
        Lease(str(unit), int(lease))
        for line in data.splitlines()
        for unit, lease in json.loads(line)
    ]
