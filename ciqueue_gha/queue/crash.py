"""A worker that dies inside a unit (DESIGN.md §2): how its heartbeat helper learns it, and
what it records.

A test that ends its worker (os._exit, SIGKILL, a segfault in C) must be reported as an error
of that test, where it broke, and not handed to the next worker to crash that one too. The
worker cannot say so itself, so its helper does, from outside. The helper is the worker's
child and cannot wait for it; it learns the end from the pipe's write end closing without the
"close" message a worker sends when it ends normally, from a pidfd on the worker becoming
readable (a test's forked child may still hold the pipe), or from its parent pid changing.

The exit status is best effort: while the worker is a zombie, /proc/<pid>/stat has it; once
the worker's own parent has reaped it, the pidfd has it (PIDFD_GET_INFO, Linux 6.15 and
later). Elsewhere the record says the status is unknown.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, TypeVar

from ..connection import BoundedRetry
from ..errors import QueueStateLost
from ..truncate import cut
from .record import AttemptRecord, CaseRecord

if TYPE_CHECKING:
    from .worker import Lease, QueueWorker

#: Seconds the helper waits, once its pipe closed, for the worker to be gone; a worker alive
#: after that closed the pipe some other way (a test closing every descriptor), and lives on.
END_WAIT = 2.0
#: Seconds the helper keeps looking for the exit status once the worker is gone.
STATUS_WAIT = 1.0
_POLL = 0.01

T = TypeVar("T")

# PIDFD_GET_INFO: _IOWR(0xFF, 11, struct pidfd_info), its 64-byte first version; exit_code
# is its int at offset 60, valid when PIDFD_INFO_EXIT is set in the mask at offset 0.
_PIDFD_INFO_SIZE = 64
_PIDFD_GET_INFO = (3 << 30) | (_PIDFD_INFO_SIZE << 16) | (0xFF << 8) | 11
_PIDFD_INFO_EXIT = 1 << 3


def watch(pid: int) -> int | None:
    """A pidfd on the worker `pid`, readable once it ends; None where there are none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_end(pid: int, pidfd: int | None) -> str | None:
    """How the worker `pid` ended ("signal SIGSEGV", "exit status 3", "exit status
    unknown"), waiting up to END_WAIT for it to end; None if it lives on."""
    limit = time.monotonic() + END_WAIT
    gone_at: float | None = None
    while True:
        status = exit_status(pid, pidfd)
        if status is not None:
            return how_it_ended(status)
        now = time.monotonic()
        if gone_at is None and _gone(pid, pidfd):
            gone_at = now
        if gone_at is not None and now - gone_at > STATUS_WAIT:
            return how_it_ended(None)
        if now > limit:
            return None
        time.sleep(_POLL)


def how_it_ended(status: int | None) -> str:
    """`status` (as waitpid gives it) in words."""
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with suppress(ValueError):
            return f"signal {signal.Signals(number).name}"
        return f"signal {number}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _gone(pid: int, pidfd: int | None) -> bool:
    if os.getppid() != pid:
        return True
    return pidfd is not None and bool(select.select([pidfd], [], [], 0)[0])


def exit_status(pid: int, pidfd: int | None) -> int | None:
    """The worker's exit status, once it has one and it can be read."""
    if pidfd is not None:
        info = bytearray(_PIDFD_INFO_SIZE)
        struct.pack_into("Q", info, 0, _PIDFD_INFO_EXIT)
        with suppress(OSError):
            fcntl.ioctl(pidfd, _PIDFD_GET_INFO, info)
            if struct.unpack_from("Q", info, 0)[0] & _PIDFD_INFO_EXIT:
                return int(struct.unpack_from("i", info, 60)[0])
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
        fields = data[data.rindex(b")") + 2 :].split()
        state, code = fields[0], int(fields[49])  # proc(5): fields 3 and 52
    except (OSError, ValueError, IndexError):
        return None
    # A zombie's code is its exit status; a dying process has it set before its descriptors
    # close, but a stopped one holds the stop signal there.
    if state in (b"Z", b"X") or (code and state not in (b"T", b"t")):
        return code
    return None


def retrying(call: Callable[[], T], until: float) -> T:
    """`call`, tried again on an error (Redis down, out of memory) with the client's backoff
    (`BoundedRetry`) until the monotonic time `until`; then, or at once on a lost queue
    state, the error is raised."""
    retry = BoundedRetry(max(0.0, until - time.monotonic()), (Exception,))
    return retry.call_with_retry(
        call, lambda error: None, is_retryable=lambda error: not isinstance(error, QueueStateLost)
    )


def error_attempt(
    unit: str,
    message: str,
    longrepr: str,
    *,
    started_at: float,
    ran_for: float,
    file: str = "",
    line: int = 0,
) -> AttemptRecord:
    """The attempt of `unit` that its helper records as an error for a worker that cannot:
    one case, named after the unit (the helper knows no finer nodeid)."""
    case = CaseRecord(
        nodeid=unit,
        outcome="error",
        duration=ran_for,
        message=message,
        longrepr=cut(longrepr),
        file=file,
        line=line,
    )
    return AttemptRecord(
        unit=unit,
        outcome="error",
        duration=ran_for,
        started_at=started_at,
        longrepr=case.longrepr,
        file=file,
        line=line,
        cases=[case],
    )


def crash_record(unit: str, how: str, started_at: float, ran_for: float) -> AttemptRecord:
    """The attempt of `unit`, whose worker ended while running it (`how`: wait_end's words).
    No location: the annotation goes to the first line of the unit's file."""
    message = f"{unit} ended the worker ({how})"
    return error_attempt(unit, message, message, started_at=started_at, ran_for=ran_for)


def settle(worker: QueueWorker, finished: dict[Lease, str]) -> None:
    """Acknowledge `finished` (record JSON by lease): attempts a worker that died or hung ran
    and had not acknowledged yet, so they never run again elsewhere."""
    if finished:
        done = [(lease, AttemptRecord.from_json(text)) for lease, text in finished.items()]
        worker.settle(done, 0, requeue=False).result()
