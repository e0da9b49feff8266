"""A loopback TCP proxy that delays every byte by a fixed time, as a network link does.

Put between Redis clients and a redis-server, it makes each round trip cost `round_trip`
seconds on top of loopback's: whatever it reads, either way, it writes `round_trip / 2`
after it arrived. Bytes are delayed, not spaced: each chunk is due a fixed time after its
own arrival, whatever came before it, so bytes sent back to back (a pipeline, a large
reply) arrive back to back, and a call sent while another's reply is on its way is not held
behind it. A long link, not a slow one: latency added, throughput not capped.

Each connection is relayed by four threads (per direction, one reads and stamps each chunk
with its due time, one sleeps until then and writes it), so a write that waits never delays
a read. Threads, not an event loop: `time.sleep` keeps to tens of microseconds, where an
event loop's timers round up to whole milliseconds. It listens on 127.0.0.1 only; `stop`
closes everything and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator

CHUNK = 65536


class _Direction:
    """Bytes one way over one connection: read and stamped as they arrive, written when due."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        self.source, self.sink, self.delay = source, sink, delay
        self._chunks: deque[tuple[float, bytes]] = deque()
        self._changed = threading.Condition()
        self._ended = False  # the source closed, or the link is being torn down

    def read(self) -> None:
        try:
            while data := self.source.recv(CHUNK):
                with self._changed:
                    self._chunks.append((time.monotonic() + self.delay, data))
                    self._changed.notify()
        except OSError:
            pass  # a reset, or the link shut down: nothing more to read
        self.end()

    def write(self) -> None:
        """Write each chunk when due; after the last one, pass the close on."""
        try:
            while (chunk := self._next()) is not None:
                due, data = chunk
                if (pause := due - time.monotonic()) > 0:
                    time.sleep(pause)
                self.sink.sendall(data)
            self.sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side went away: the link is over

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify()

    def _next(self) -> tuple[float, bytes] | None:
        with self._changed:
            while not self._chunks and not self._ended:
                self._changed.wait()
            return self._chunks.popleft() if self._chunks else None


class _Link:
    """A client connection, its connection to the server, and the four threads between."""

    def __init__(self, client: socket.socket, server: socket.socket, delay: float) -> None:
        self.sockets = (client, server)
        self.directions = (_Direction(client, server, delay), _Direction(server, client, delay))
        self.threads = [
            threading.Thread(target=work, name="delay-proxy", daemon=True)
            for direction in self.directions
            for work in (direction.read, direction.write)
        ]

    @property
    def ended(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)

    def close(self) -> None:
        """Shut both sockets down (every thread sees it and ends), join, close."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for direction in self.directions:
            direction.end()
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


class DelayProxy:
    """Relays 127.0.0.1:`port` to `upstream_host`:`upstream_port`, each way `round_trip / 2`
    seconds late. Call `start` and `stop`, or use `delay_proxy`."""

    def __init__(self, upstream_host: str, upstream_port: int, *, round_trip: float) -> None:
        if round_trip < 0:
            raise ValueError(f"a round trip cannot take {round_trip} s")
        self.upstream = (upstream_host, upstream_port)
        self.round_trip = round_trip
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._accepted = 0
        #: The local port of each connection to the server, as the server sees its clients.
        self.upstream_ports: set[int] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="delay-proxy-accept")

    def url(self, db: int = 0) -> str:
        """A redis:// URL that goes through the proxy."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def accepted(self) -> int:
        """How many client connections were relayed so far."""
        with self._lock:
            return self._accepted

    def start(self) -> DelayProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, join every thread."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor's accept()
        if self._acceptor.ident is not None:
            self._acceptor.join(timeout=5)  # no link is added after this
        self._listener.close()
        while self._links:
            self._links.pop().close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # `stop` shut the listener down
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # no server: the client sees its connection closed
                continue
            self._relay(client, server)

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        for sock in (client, server):
            sock.settimeout(None)
            # Each chunk goes out when due, not held back to be sent with the next one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, server, self.round_trip / 2)
        with self._lock:  # `stop` joins the threads of the links it takes under the lock
            for thread in link.threads:
                thread.start()
            ended = [old for old in self._links if old.ended]
            self._links = [old for old in self._links if not old.ended] + [link]
            self.upstream_ports.add(server.getsockname()[1])
            self._accepted += 1
        for old in ended:  # their threads are done: only the sockets are left to close
            old.close()


@contextlib.contextmanager
def delay_proxy(
    upstream_host: str, upstream_port: int, *, round_trip: float
) -> Iterator[DelayProxy]:
    """A started `DelayProxy`, stopped on the way out."""
    proxy = DelayProxy(upstream_host, upstream_port, round_trip=round_trip).start()
    try:
        yield proxy
    finally:
        proxy.stop()
