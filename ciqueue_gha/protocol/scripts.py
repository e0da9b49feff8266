"""The Lua scripts of the queue: loaded from ``lua/``, one per operation.

Each script is the shared prelude (``lua/_prelude.lua``) followed by its own file. Scripts
signal failures with error replies whose first word is a ``CIQ_`` code; `ERROR_CODES` maps
each code to its exception, and `redis_failure` every other error of Redis's (out of memory,
no permission, ...) to one, here and nowhere else: each is one line and exit 4, never a
traceback.

Calls go out on a connection of their own, packed here, and may be *sent* now and their
reply read later (`Scripts.send`): a worker sends its acknowledge and runs the next test
while Redis answers. One reply is in flight at a time; any other call reads it first.
Anything unusual on that connection (a dropped connection, a server that forgot the
script) falls back to redis-py's own call, with its retries and script loading: every
script is safe to repeat (DESIGN.md §2: a retried call changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .. import defaults
from ..connection import BoundedRetry
from ..errors import (
    CiqueueError,
    QueueStateLost,
    RedisAuthFailed,
    RedisRefused,
    RedisUnreachable,
)
from ..truncate import REDIS_REPLY_LIMIT, shown

SCRIPT_NAMES = (
    "populate",
    "reserve",
    "acknowledge",
    "heartbeat",
    "release",
    "give_back",
    "status",
    "trip",
)

#: Scripts on keys of their own (queue/claim.py), not the queue's: loaded without the prelude.
OWN_KEY_SCRIPTS = ("claim", "unclaim")

#: Error reply codes raised by the scripts, and the exception each becomes.
ERROR_CODES: dict[str, type[CiqueueError]] = {
    "CIQ_STATE_LOST": QueueStateLost,
}

#: Redis's own error codes (an error reply's first word), said in words.
REDIS_ERRORS = {
    "OOM": "out of memory: maxmemory reached under a policy that evicts nothing",
    "NOPERM": "the Redis user lacks a permission the queue needs: see its ACL",
    "NOSCRIPT": "the server keeps forgetting the queue's scripts",
    "READONLY": "a read-only replica: point the URL at the primary",
    "MISCONF": "writes stopped: the server's last save to disk failed",
    "BUSY": "busy running a script",
    "LOADING": "still loading its data",
    "MASTERDOWN": "the replica lost its primary",
    "NOREPLICAS": "not enough replicas to accept writes",
    "CROSSSLOT": "keys in different cluster slots",
    "MOVED": "a cluster node that does not own the build's keys",
    "ASK": "a cluster node migrating the build's keys",
    "CLUSTERDOWN": "the cluster is down",
    "TRYAGAIN": "the cluster is resharding",
    "WRONGTYPE": "a key of the build holds something else than the queue wrote",
    "EXECABORT": "a transaction was refused",
}

#: redis-py's exceptions for the codes it takes off the message, by class name (so a
#: version of redis-py without one of them still imports this module).
_CODE_OF_CLASS = {
    "OutOfMemoryError": "OOM",
    "NoPermissionError": "NOPERM",
    "NoScriptError": "NOSCRIPT",
    "ReadOnlyError": "READONLY",
    "BusyLoadingError": "LOADING",
    "MasterDownError": "MASTERDOWN",
    "ClusterCrossSlotError": "CROSSSLOT",
    "MovedError": "MOVED",
    "AskError": "ASK",
    "ClusterDownError": "CLUSTERDOWN",
    "TryAgainError": "TRYAGAIN",
    "ExecAbortError": "EXECABORT",
}

#: What makes a call on our own connection fall back to redis-py's call and its retries.
_FALL_BACK = (redis.ConnectionError, redis.TimeoutError, NoScriptError)


@cache
def source(name: str) -> str:
    """The full text of script `name`: the prelude (queue scripts only), then the script."""
    lua = resources.files("ciqueue_gha.protocol") / "lua"
    own = (lua / f"{name}.lua").read_text()
    return own if name in OWN_KEY_SCRIPTS else (lua / "_prelude.lua").read_text() + "\n" + own


def _bulk(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Scripts:
    """The queue's scripts registered on one client; calls map ``CIQ_`` errors to exceptions.

    redis-py's `Script` retries with SCRIPT LOAD on NOSCRIPT, so a restarted server (which
    forgets loaded scripts) is handled on the next call.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._scripts: dict[str, Script] = {
            name: client.register_script(source(name)) for name in SCRIPT_NAMES
        }
        pool = client.connection_pool
        # Not from the pool: it stays ours while a reply is in flight on it.
        self.connection = pool.connection_class(**pool.connection_kwargs)
        self._in_flight: Reply | None = None
        self._client = client
        self._heads: dict[tuple[str, tuple[str, ...]], bytes] = {}

    def load_all(self) -> None:
        """Load every script the server does not know yet, so a server that cannot run them
        fails early. Asked in one round trip, loaded in one more by the first process of a
        build only: compiling them costs Redis 150 µs each process (one round trip a script
        cost a build 0.15 s over a 20 ms link)."""
        scripts = list(self._scripts.values())

        def load_missing() -> None:
            known = self._client.script_exists(*(script.sha for script in scripts))
            missing = [script for script, there in zip(scripts, known, strict=True) if not there]
            if missing:
                pipe = self._client.pipeline(transaction=False)
                for script in missing:
                    pipe.script_load(script.script)
                pipe.execute()

        try:
            self._retried(load_missing)
        except redis.ResponseError as exc:
            raise redis_failure(exc) from None

    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self.send(name, keys, args).result()

    def send(self, name: str, keys: list[str], args: list[Any]) -> Reply:
        """Send a call of script `name` and return at once; its `Reply` reads the answer."""
        if self._in_flight is not None:
            self._in_flight.wait()
        reply = Reply(self, name, keys, args)
        self._in_flight = reply if reply.sent else None
        return reply

    def packed(self, name: str, keys: list[str], args: list[Any]) -> bytes:
        """EVALSHA of script `name` in Redis's wire format; the part naming the script and
        its keys is the same call after call, and packed once."""
        head_key = (name, tuple(keys))
        head = self._heads.get(head_key)
        if head is None:
            words = ["EVALSHA", self._scripts[name].sha, len(keys), *keys]
            head = self._heads[head_key] = b"".join(map(_bulk, words))
        count = b"*%d\r\n" % (3 + len(keys) + len(args))
        return count + head + b"".join(map(_bulk, args))

    def fall_back(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """The call through redis-py: retries with backoff, loads a forgotten script."""
        try:
            return self._retried(lambda: self._scripts[name](keys=keys, args=args))
        except redis.ResponseError as exc:
            raise redis_failure(exc) from None

    def _retried(self, call: Callable[[], Any]) -> Any:
        """`call` again after a lost connection, within the client's retry budget (the same
        `BoundedRetry` redis-py's own retries use): redis-py takes a pooled connection before
        those retries begin, and a connection that drops while it is checked (a reset storm)
        would fail the call outright. A call that failed only after spending the budget is not
        tried again, so a Redis that stopped answering still fails within one budget. Every
        script is idempotent."""
        budget = getattr(self._client.get_retry(), "budget", defaults.RETRY_BUDGET)
        return BoundedRetry(budget).call_with_retry(call, lambda _error: None)

    def read_in_flight(self, reply: Reply) -> None:
        if self._in_flight is reply:
            self._in_flight = None

    def close(self, *, read_in_flight: bool = True) -> None:
        if self._in_flight is not None and read_in_flight:
            self._in_flight.wait()
        self.connection.disconnect()


class Reply:
    """A script call sent on `Scripts.connection`; `result()` reads its answer, once."""

    def __init__(self, scripts: Scripts, name: str, keys: list[str], args: list[Any]) -> None:
        self._scripts = scripts
        self._call = (name, keys, args)
        self._done = False
        self._value: Any = None
        self._error: Exception | None = None
        try:
            scripts.connection.send_packed_command([scripts.packed(name, keys, args)])
            self.sent = True
        except _FALL_BACK:
            # Not sent: made now through redis-py's retries, not when the reply is asked for.
            scripts.connection.disconnect()
            self.sent = False
            self._settle(lambda: scripts.fall_back(name, keys, args))

    def arrived(self) -> bool:
        """Whether the answer is here (read or waiting on the connection): reading it now
        would not wait."""
        if self._done:
            return True
        try:
            return bool(self._scripts.connection.can_read(timeout=0))
        except _FALL_BACK:
            return True  # reading it finds the error at once

    def wait(self) -> None:
        """Read the answer off the connection and keep it (or the error it is)."""
        if not self._done:
            self._scripts.read_in_flight(self)
            self._settle(self._read)

    def _settle(self, answer: Callable[[], Any]) -> None:
        try:
            self._value = answer()
        except Exception as exc:
            self._error = exc
        self._done = True

    def _read(self) -> Any:
        connection = self._scripts.connection
        try:
            return connection.read_response()
        except _FALL_BACK:
            # Unknown whether the call ran: repeating it is safe, every script is idempotent.
            connection.disconnect()
            return self._scripts.fall_back(*self._call)
        except redis.ResponseError as exc:
            raise redis_failure(exc) from None

    def result(self) -> Any:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value


def redis_failure(exc: redis.RedisError) -> CiqueueError:
    """The exception a Redis error becomes, with a one-line message: a script's ``CIQ_`` code,
    refused credentials, a lost connection, or `RedisRefused` naming the error's kind."""
    message = " ".join(str(exc).split())
    # Redis 7 prefixes script errors with the script's location; the code is the first CIQ_ word.
    for word in message.split():
        if word in ERROR_CODES:
            return ERROR_CODES[word](message[message.index(word) + len(word) :].strip())
    if isinstance(exc, redis.AuthenticationError):
        return RedisAuthFailed(f"Redis refused the credentials: {_short(message)}")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return RedisUnreachable(f"lost Redis: {_short(message or type(exc).__name__)}")
    code = error_code(exc)
    # Redis's words, without the script location it appends (a hash, a line of our Lua).
    said = message.removeprefix(code + " ").split(" script: ", 1)[0]
    kind = f"{code} ({REDIS_ERRORS[code]})" if code in REDIS_ERRORS else code
    return RedisRefused(f"Redis refused the call, {kind}: {_short(said)}")


def error_code(exc: redis.RedisError) -> str:
    """Redis's code for `exc` (OOM, NOPERM, ...): redis-py takes it off the message of the
    errors it has a class for; any other error reply still starts with its own."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _CODE_OF_CLASS:
            return _CODE_OF_CLASS[cls.__name__]
    first = str(exc).split(" ", 1)[0]
    return first if first.isupper() and first.isalpha() else "ERR"


def _short(text: str) -> str:
    return shown(text, REDIS_REPLY_LIMIT, quote=False)
