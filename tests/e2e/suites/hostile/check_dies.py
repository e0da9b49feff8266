"""A test that kills its worker in the middle of the session (as a crash in C would), after
writing commands."""

from __future__ import annotations

import os
import signal

from hostile_text import HOSTILE


def test_dies() -> None:
    os.write(1, f"about to die{HOSTILE}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
