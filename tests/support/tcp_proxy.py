"""A loopback TCP proxy between Redis clients and a redis-server, with network faults on demand.

Tests put it between a worker's client and Redis to make the network misbehave on cue:

- `drop_next_reply`: the next request any client sends still reaches Redis (and runs there),
  but its reply is thrown away and the client's connection closed, as when a reply is lost
  on the way back. The client sees a dropped connection and retries.
- `reset`: close every open connection at once.
- `pause` / `resume`: stop relaying in both directions; data waits in the socket buffers.

It listens on 127.0.0.1 only, holds at most `max_connections` connections, and `stop` closes
everything and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from types import TracebackType

POLL = 0.05  # seconds a relay thread waits before looking at the stop and pause flags again
CHUNK = 65536
RELAY_NAME = "tcp-proxy-relay"


class _Link:
    """One client connection and its connection to the server, relayed by two threads."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.doomed = False  # a request went through while armed: drop its reply, then close
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._relays_ended = 0

    def shut(self) -> None:
        """Shut both sockets down; the relay threads see it and end. Safe from any thread."""
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def relay_ended(self) -> None:
        """Called by each relay thread as it ends; the last one closes the sockets."""
        self.shut()
        with self._lock:
            self._relays_ended += 1
            last = self._relays_ended == len(self.threads)
        if last:
            self.client.close()
            self.server.close()

    def close(self) -> None:
        """Shut the link down and wait for its relay threads (which close the sockets)."""
        self.shut()
        for thread in self.threads:
            thread.join(timeout=5)


class TcpProxy:
    """Relays 127.0.0.1:`port` to `upstream_host`:`upstream_port`; faults are injected on demand.

    Use as a context manager, or call `start` and `stop`.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        max_connections: int = 64,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.max_connections = max_connections
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._drops_armed = 0
        self._dropped = 0
        self._accepted = 0
        #: When each client connection arrived (time.monotonic), in order.
        self.accepted_at: list[float] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="tcp-proxy-accept", daemon=True
        )

    @property
    def dropped_replies(self) -> int:
        """How many replies were thrown away so far."""
        with self._lock:
            return self._dropped

    @property
    def accepted(self) -> int:
        """How many client connections were accepted so far."""
        with self._lock:
            return self._accepted

    def url(self, db: int = 0) -> str:
        """A redis:// URL that goes through the proxy."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, join every thread."""
        self._stopping.set()
        self._flowing.set()  # wake paused relays so they can see the stop
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def drop_next_reply(self) -> None:
        """Let the next request through to the server, drop its reply, close that connection."""
        with self._lock:
            self._drops_armed += 1

    def reset(self) -> None:
        """Close every open connection, as a network blip or a load balancer would."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def pause(self) -> None:
        """Stop relaying; bytes wait in the socket buffers until `resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted_at.append(time.monotonic())
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        with self._lock:
            self._links = [link for link in self._links if not link.closed.is_set()]
            full = len(self._links) >= self.max_connections
        try:
            if full:
                raise OSError("too many connections")
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        link = _Link(client, server)
        link.threads = [
            threading.Thread(target=self._relay, args=(link, up), name=RELAY_NAME, daemon=True)
            for up in (True, False)
        ]
        # Started under the lock: `reset` and `stop` take the links under it and join their
        # threads, which must have started by then.
        with self._lock:
            for thread in link.threads:
                thread.start()
            self._links.append(link)
            self._accepted += 1

    def _relay(self, link: _Link, upstream: bool) -> None:
        """Copy bytes one way (client to server when `upstream`) until either side closes."""
        source, sink = (link.client, link.server) if upstream else (link.server, link.client)
        try:
            while not link.closed.is_set() and not self._stopping.is_set():
                if not self._flowing.wait(POLL):
                    continue
                readable, _, _ = select.select([source], [], [], POLL)
                if not readable or not self._flowing.is_set():
                    continue
                data = source.recv(CHUNK)
                if not data:
                    break
                if upstream:
                    self._mark_if_armed(link)
                elif link.doomed:
                    with self._lock:
                        self._dropped += 1
                    break  # the request ran on the server; its reply is lost
                sink.sendall(data)
        except OSError:
            pass  # a reset or a shutdown from the other relay: the link is over
        finally:
            link.relay_ended()

    def _mark_if_armed(self, link: _Link) -> None:
        with self._lock:
            if self._drops_armed > 0 and not link.doomed:
                self._drops_armed -= 1
                link.doomed = True
