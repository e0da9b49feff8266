"""Every Redis error becomes one exception, in one place (`scripts.redis_failure`): a script's
``CIQ_`` code its own, Redis's refusals `RedisRefused` naming their kind; each a one-line
message and exit 4. The errors are built as redis-py builds them from Redis's replies."""

from __future__ import annotations

import pytest
import redis
from redis import exceptions

from ciqueue_gha.errors import (
    EXIT_INFRASTRUCTURE,
    QueueStateLost,
    RedisAuthFailed,
    RedisRefused,
    RedisUnreachable,
)
from ciqueue_gha.protocol.scripts import error_code, redis_failure
from ciqueue_gha.truncate import REDIS_REPLY_LIMIT

LOCATION = " script: 86fa747aaa87e819c3191f0a45b0b7c58191abb1, on @user_script:1."
OOM = "command not allowed when used memory > 'maxmemory'."
NOPERM = "this user has no permissions to run the 'evalsha' command"
LUA = "user_script:1: attempt to perform arithmetic on a nil value"

#: (the error as redis-py raises it, Redis's code for it)
REFUSALS = [
    # redis-py takes the code off the message of these:
    (exceptions.OutOfMemoryError(OOM), "OOM"),
    (exceptions.OutOfMemoryError(OOM + LOCATION), "OOM"),
    (exceptions.NoPermissionError(NOPERM), "NOPERM"),
    (exceptions.NoScriptError("No matching script. Please use EVAL."), "NOSCRIPT"),
    (exceptions.ReadOnlyError("You can't write against a read only replica."), "READONLY"),
    (exceptions.ExecAbortError("Transaction discarded because of previous errors."), "EXECABORT"),
    # ... and leaves it on these:
    (redis.ResponseError("BUSY Redis is busy running a script."), "BUSY"),
    (redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, ..."), "MISCONF"),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), "WRONGTYPE"),
    (redis.ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
    # A plain ERR (taken off too), or a Lua error of a script:
    (redis.ResponseError("unknown command 'EVALSHA'"), "ERR"),
    (redis.ResponseError(LUA + LOCATION), "ERR"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "code"), REFUSALS, ids=[code for _, code in REFUSALS])
def test_a_refusal_is_one_line_naming_its_kind(error: redis.RedisError, code: str) -> None:
    failure = redis_failure(error)
    assert isinstance(failure, RedisRefused)
    assert failure.exit_code == EXIT_INFRASTRUCTURE
    assert error_code(error) == code
    message = str(failure)
    assert message.startswith(f"Redis refused the call, {code}")
    assert "\n" not in message
    assert " script: " not in message  # the script's hash and line are noise to a user


@pytest.mark.parametrize(
    "reply",
    [
        "CIQ_STATE_LOST part of this build is gone from Redis (x): queue state lost",
        # Redis 7 may put the script's location first.
        "ERR user_script:9: CIQ_STATE_LOST part of this build is gone: queue state lost",
    ],
)
def test_state_lost_is_its_own_error(reply: str) -> None:
    failure = redis_failure(redis.ResponseError(reply))
    assert isinstance(failure, QueueStateLost)
    assert failure.exit_code == EXIT_INFRASTRUCTURE
    assert str(failure).startswith("part of this build is gone")
    assert str(failure).endswith("queue state lost")


def test_lost_connection_and_credentials() -> None:
    lost = redis_failure(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1.\nrefused"))
    assert isinstance(lost, RedisUnreachable)
    assert str(lost) == "lost Redis: Error 111 connecting to 127.0.0.1:1. refused"
    assert isinstance(redis_failure(redis.TimeoutError()), RedisUnreachable)
    wrong = redis_failure(redis.AuthenticationError("invalid username-password pair"))
    assert isinstance(wrong, RedisAuthFailed)
    assert wrong.exit_code == EXIT_INFRASTRUCTURE


def test_a_long_or_multi_line_reply_is_cut_to_one_short_line() -> None:
    failure = redis_failure(redis.ResponseError("ERR " + "x" * 5000 + "\nsecond line"))
    message = str(failure)
    assert "\n" not in message
    assert len(message) < REDIS_REPLY_LIMIT + 100
