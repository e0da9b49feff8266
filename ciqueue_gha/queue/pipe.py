"""Lines from the worker's pipe to its heartbeat helper, read in chunks.

select() sees the pipe, not a reader's buffer, so a buffered reader could hold a line read
ahead (the first lease, sent right behind "connect") where select() never sees it; and an
unbuffered one reads a line a byte at a time: one system call a byte, hundreds a unit once a
message carries the attempts run and not yet acknowledged. `PipeLines` reads what the pipe
holds and hands out whole lines, and says when it holds one, so its owner reads before it
waits on the pipe again.
"""

from __future__ import annotations

import os

CHUNK = 1 << 16


class PipeLines:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def pending(self) -> bool:
        """Whether a whole line was read already (select() would not see it)."""
        return b"\n" in self._buffer

    def readline(self) -> bytes | None:
        """The next line, without its newline; None once the pipe closed (a line cut short
        by the writer's end is not one)."""
        while b"\n" not in self._buffer:
            chunk = os.read(self.fd, CHUNK)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line
