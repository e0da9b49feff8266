"""A test that shows everything a test process can read of its environment and command line,
and of its ancestors' (the worker, `run`, whatever started them): os.environ, and
/proc/PID/environ and /proc/PID/cmdline, which keep what each program started with."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def readable(pid: int) -> dict[str, str]:
    shown = {}
    for name in ("environ", "cmdline"):
        try:
            data = Path(f"/proc/{pid}/{name}").read_bytes()
        except OSError:
            continue
        shown[f"/proc/{pid}/{name}"] = data.replace(b"\0", b"\n").decode("utf-8", "replace")
    return shown


def ancestors() -> list[int]:
    pids, pid = [], os.getpid()
    while pid > 1:
        pids.append(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return pids


def test_shows_its_environment() -> None:
    shown = {"os.environ": "\n".join(f"{k}={v}" for k, v in os.environ.items())}
    for pid in ancestors():
        shown.update(readable(pid))
    text = "\n".join(f"--- {where}\n{what}" for where, what in shown.items())
    print(text)
    sys.stderr.write(text)
    assert not shown, text
