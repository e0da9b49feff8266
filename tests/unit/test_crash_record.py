"""What a dead worker's helper records (queue/crash.py): the exit status it reads from
outside, in words, and the error attempt of the unit, named after the unit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ciqueue_gha.queue import crash
from ciqueue_gha.queue.crash import crash_record, exit_status, how_it_ended, wait_end, watch


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (3 << 8, "exit status 3"),
        (0, "exit status 0"),
        (signal.SIGKILL, "signal SIGKILL"),
        (signal.SIGSEGV | 0x80, "signal SIGSEGV"),  # with a core dump
        (None, "exit status unknown"),
    ],
)
def test_an_exit_status_in_words(status: int | None, words: str) -> None:
    assert how_it_ended(status) == words


def test_the_record_is_an_error_of_the_unit_with_no_location() -> None:
    record = crash_record("tests/test_a.py", "signal SIGSEGV", 1000.0, 2.5)
    message = "tests/test_a.py ended the worker (signal SIGSEGV)"
    assert (record.unit, record.outcome, record.file, record.line) == (
        "tests/test_a.py",
        "error",
        "",
        0,
    )
    (case,) = record.cases
    assert (case.nodeid, case.outcome, case.message, case.longrepr) == (
        "tests/test_a.py",
        "error",
        message,
        message,
    )
    assert (record.started_at, record.duration) == (1000.0, 2.5)


def test_a_zombies_exit_status_is_read_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import os; os._exit(3)"])
    limit = time.monotonic() + 10
    while (status := exit_status(child.pid, None)) is None:
        assert time.monotonic() < limit, "no exit status seen"
        time.sleep(0.01)
    child.wait()
    assert status == 3 << 8


def test_a_reaped_processs_exit_status_is_read_from_its_pidfd() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfd = watch(child.pid)
    try:
        child.kill()
        child.wait()
        status = exit_status(child.pid, pidfd)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if status is None:
        pytest.skip("no exit status from a pidfd (Linux before 6.15)")
    assert how_it_ended(status) == "signal SIGKILL"


def test_a_live_worker_is_not_taken_for_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe closed by a worker that lives on: no end after the wait (the parent of this
    process, alive, stands for the worker)."""
    monkeypatch.setattr(crash, "END_WAIT", 0.2)
    started = time.monotonic()
    assert wait_end(os.getppid(), None) is None
    assert time.monotonic() - started >= 0.2
