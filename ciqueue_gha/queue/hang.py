"""A hung test costs one worker, once (DESIGN.md §2): what happens past --max-test-duration.

The worker is stuck inside the test, so its heartbeat helper acts for it. It asks the worker
for its stack (`STACK_SIGNAL`: faulthandler, armed by `arm`, writes every thread's stack to a
file from a C signal handler, whatever the test is doing), records the unit as an error
(timeout) with a lease-checked acknowledge, releases the leases the worker held ahead so other
workers take them at once, and ends the worker (`STOP_SIGNAL`, then SIGKILL if a test that
blocks signals does not let it go), which exits `EXIT_FAILED`: its unit failed.

If the worker finished the unit after all (its own acknowledge came first, so the helper's is
stale), nothing is released and the worker runs on.
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import tempfile
import time
from contextlib import suppress
from types import FrameType
from typing import IO, NoReturn

from ..errors import EXIT_FAILED
from .crash import error_attempt
from .record import AttemptRecord

#: Asks the worker to write its threads' stacks to its stack file (faulthandler).
STACK_SIGNAL = signal.SIGUSR1
#: Tells the worker to exit at once: its hung unit has been recorded.
STOP_SIGNAL = signal.SIGUSR2

#: Seconds the helper waits for the stack to be written, and for the worker to exit before
#: it is killed.
STACK_WAIT = 1.0
STOP_GRACE = 3.0

# Bound at import: a test that replaces os._exit (a monkeypatch) cannot keep a hung worker alive.
_exit = os._exit


def arm() -> IO[bytes]:
    """In the worker, once: write the stacks on `STACK_SIGNAL` to the file returned, and exit
    on `STOP_SIGNAL`. The file's name goes to the helper; the caller removes it at the end."""
    # Open for the worker's whole life (faulthandler writes to its descriptor), so no `with`.
    stack = tempfile.NamedTemporaryFile(  # noqa: SIM115
        prefix="ciqueue-stack-", suffix=".txt", delete=False
    )
    faulthandler.register(STACK_SIGNAL, file=stack, all_threads=True, chain=False)
    signal.signal(STOP_SIGNAL, _stop)
    return stack


def _stop(signum: int, frame: FrameType | None) -> NoReturn:
    # The helper has recorded the unit and told the log why; nothing is left to wait for (and
    # pytest's capture holds stdout and stderr mid-test, so a line here would be lost).
    _exit(EXIT_FAILED)


def read_stack(pid: int, path: str) -> str:
    """Signal the worker `pid` for its stacks and read what it wrote to `path`; '' if none."""
    if not path:
        return ""
    try:
        before = os.path.getsize(path)
        os.kill(pid, STACK_SIGNAL)
    except OSError:
        return ""
    deadline = time.monotonic() + STACK_WAIT
    size = before
    # Written in one go from a signal handler: done once it has grown and then stays put.
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = os.path.getsize(path)
        if now > before and now == size:
            break
        size = now
    with open(path, "rb") as stack:
        stack.seek(before)
        return stack.read().decode(errors="replace")


#: Frames of the machinery that runs a test, left out of its stack: the test's own remain.
_RUNNER_FRAMES = re.compile(
    r'File "([^"]*/(_pytest|pluggy|click|ciqueue_gha)/[^"]*|<frozen runpy>)"'
)


def _without_runner_frames(stack: str) -> str:
    return "\n".join(line for line in stack.splitlines() if not _RUNNER_FRAMES.search(line))


def timeout_record(
    unit: str, limit: float, started_at: float, ran_for: float, stack: str
) -> AttemptRecord:
    """The attempt of `unit`, hung past `limit` seconds: an error (timeout) with its stack
    (faulthandler's, less the frames of the machinery that runs the test)."""
    stack = _without_runner_frames(stack)
    message = f"timeout: ran longer than --max-test-duration ({limit:g} s); the worker was stopped"
    longrepr = message + (f"\n\nStack of the worker when it was stopped:\n{stack}" if stack else "")
    path = unit.split("::", 1)[0]
    return error_attempt(
        unit,
        message,
        longrepr,
        started_at=started_at,
        ran_for=ran_for,
        file=path,
        line=_line_in(stack, path),
    )


def _line_in(stack: str, path: str) -> int:
    """The line of the innermost frame in `path` (faulthandler lists the innermost first)."""
    for match in re.finditer(r'File "(?P<file>[^"]+)", line (?P<line>\d+)', stack):
        if match["file"].endswith("/" + path) or match["file"] == path:
            return int(match["line"])
    return 0


def stop_worker(pid: int) -> None:
    """End the hung worker `pid`: `STOP_SIGNAL`, then SIGKILL after `STOP_GRACE` seconds.
    Called by its helper, whose parent it is: the helper's parent changes when it exits."""
    with suppress(ProcessLookupError):
        os.kill(pid, STOP_SIGNAL)
        deadline = time.monotonic() + STOP_GRACE
        while os.getppid() == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.getppid() == pid:
            os.kill(pid, signal.SIGKILL)
