"""The tests' redis-server: the product's `PrivateRedis` on a reserved port, with what only
tests need (a password, an append-only file, a kill and a restart on the same port)."""

from __future__ import annotations

import shutil

from ciqueue_gha.redis_server import PrivateRedis
from tests.support.ports import reserve_port


class ControlledRedis(PrivateRedis):
    """A private redis-server a test controls.

    Its port is reserved (tests/support/ports.py), so no other test process takes it, even
    while the server is down between `kill` and `restart`. `restart` brings it back on that
    port, with its data (append-only file) or empty, as a crashed or replaced server would.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        password: str | None = None,
        appendonly: bool = False,
    ) -> None:
        super().__init__(binary=binary, port=reserve_port())
        self.password = password
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = super().args()
        if self.appendonly:
            args[args.index("--appendonly") + 1] = "yes"
            args += ["--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def kill(self) -> None:
        """Stop the server at once (SIGKILL): what it had not written is lost."""
        self._kill()

    def restart(self, *, empty: bool) -> None:
        """Kill the server and start it again on the same port, empty or from its data."""
        self.kill()
        if empty:
            for path in self.dir.iterdir():
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()
