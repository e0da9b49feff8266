"""The Lua scripts of the queue: loaded from ``lua/``, one per operation.

Each script is the shared prelude (``lua/_prelude.lua``) followed by its own file. Scripts
signal failures with error replies whose first word is a ``CIQ_`` code; `ERROR_CODES` maps
each code to its exception, here and nowhere else.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from .errors import CiqueueError, QueueStateLost

SCRIPT_NAMES = ("populate", "reserve", "acknowledge", "requeue", "heartbeat", "release", "status")

#: Error reply codes raised by the scripts, and the exception each becomes.
ERROR_CODES: dict[str, type[CiqueueError]] = {
    "CIQ_STATE_LOST": QueueStateLost,
}


@cache
def source(name: str) -> str:
    """The full text of script `name`: the prelude, then the script."""
    lua = resources.files("ciqueue_gha") / "lua"
    return (lua / "_prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """The queue's scripts registered on one client; calls map ``CIQ_`` errors to exceptions.

    redis-py's `Script` retries with SCRIPT LOAD on NOSCRIPT, so a restarted server (which
    forgets loaded scripts) is handled on the next call.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._scripts: dict[str, Script] = {
            name: client.register_script(source(name)) for name in SCRIPT_NAMES
        }

    def load_all(self) -> None:
        """Load every script now, so a server that cannot run them fails early."""
        for name in self._scripts:
            self.load(name)

    def load(self, name: str) -> None:
        """Load script `name` now: before a call with a large request, so a server that does
        not know the script yet does not make redis-py send that request twice."""
        script = self._scripts[name]
        script.registered_client.script_load(script.script)

    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.ResponseError as exc:
            raise translate(exc) from None


def translate(exc: redis.ResponseError) -> Exception:
    """The exception for a script's error reply: a mapped ``CIQ_`` code, or the error itself."""
    message = str(exc)
    # Redis 7 prefixes script errors with the script's location; the code is the first CIQ_ word.
    for word in message.split():
        if word in ERROR_CODES:
            return ERROR_CODES[word](message[message.index(word) + len(word) :].strip())
    return exc
