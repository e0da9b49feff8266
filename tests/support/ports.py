"""Ports for the tests' servers that no other test process takes.

A test's redis-server needs its port before it starts, and keeps it across a restart. A port
the kernel hands out (bind to port 0, then close) is free for a moment only: another xdist
worker, or any outgoing connection, may take it before the server binds it or while it
restarts. So these ports come from below the kernel's ephemeral range (which port 0 and
outgoing connections never use), and each is held by a lock file until this process exits:
two test processes on this machine, from any checkout, never hold the same one, and a port
whose server stopped stays closed for the rest of the session.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

LOCKS = Path(tempfile.gettempdir()) / "ciqueue-test-ports"

#: The lowest port handed out; the highest is just below the ephemeral range.
LOWEST = 10_000

#: Where the kernel's ephemeral range starts when it does not say (IANA's).
EPHEMERAL_DEFAULT = 49_152

_held: dict[int, int] = {}  # port -> the descriptor of its locked file
_rng = random.Random()  # its own: a test seeding the global one must not align the workers


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    except OSError:
        return EPHEMERAL_DEFAULT
    return int(text.split()[0])


def _bindable(port: int) -> bool:
    """Whether a server could listen on `port` now (as redis-server does: SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _lock(port: int) -> int | None:
    """The descriptor of `port`'s lock file, locked by this process; None if another holds it."""
    fd = os.open(LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def reserve_port() -> int:
    """A loopback port nothing listens on, held by this process until it exits.

    Nothing else listens there unless this process does: a test may also keep one as a port
    where connections are refused.
    """
    LOCKS.mkdir(exist_ok=True)
    candidates = list(range(LOWEST, _ephemeral_start()))
    _rng.shuffle(candidates)
    for port in candidates:
        if port in _held:
            continue
        fd = _lock(port)
        if fd is None:
            continue
        if _bindable(port):
            _held[port] = fd
            return port
        os.close(fd)
    raise RuntimeError(f"no free port from {LOWEST} to the ephemeral range")
