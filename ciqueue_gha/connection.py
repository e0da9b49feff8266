"""Connections to Redis: URL checks, TLS, retries with backoff, and the server check.

Messages never contain a password: URLs are shown through `redact`.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import defaults
from .errors import RedisAuthFailed, RedisTooOld, RedisUnreachable, UsageError

SCHEMES = ("redis", "rediss", "unix")


def redact(url: str) -> str:
    """`url` with any password replaced by ``***``; safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def validate_url(url: str) -> str:
    """Return `url` if it is a usable Redis URL, else raise `UsageError` saying why."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed Redis URL {shown}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise UsageError(
            f"malformed Redis URL {shown}: the scheme must be redis://, rediss:// or unix://"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError(f"malformed Redis URL {shown}: unix:// needs a socket path")
        return url
    if not parts.hostname:
        raise UsageError(f"malformed Redis URL {shown}: no host")
    if port == 0:
        raise UsageError(f"malformed Redis URL {shown}: port 0")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise UsageError(f"malformed Redis URL {shown}: the database must be a number")
    return url


def connect(
    url: str, *, verify_tls: bool = True, retries: int = defaults.CONNECT_RETRIES
) -> redis.Redis:
    """A client for `url` that retries dropped connections with exponential backoff.

    ``rediss://`` verifies the server's certificate unless `verify_tls` is False, which
    says so loudly on stderr.
    """
    validate_url(url)
    options: dict[str, object] = {}
    if url.startswith("rediss://"):
        if verify_tls:
            options["ssl_cert_reqs"] = "required"
        else:
            print(
                "ciqueue-gha: WARNING: TLS certificate verification is OFF for "
                f"{redact(url)}; anyone on the path can read and change the queue",
                file=sys.stderr,
            )
            options["ssl_cert_reqs"] = "none"
            options["ssl_check_hostname"] = False
    retry = Retry(ExponentialBackoff(cap=defaults.BACKOFF_CAP, base=defaults.BACKOFF_BASE), retries)
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=defaults.SOCKET_TIMEOUT,
        socket_connect_timeout=defaults.SOCKET_TIMEOUT,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        **options,
    )


def check_server(
    client: redis.Redis, url: str, min_version: tuple[int, int] = defaults.MIN_REDIS_VERSION
) -> tuple[int, ...]:
    """Reach the server and check it can run the scripts; returns its version.

    Raises `RedisUnreachable`, `RedisAuthFailed` or `RedisTooOld` with a one-line message.
    """
    shown = redact(url)
    try:
        info = client.info("server")
    except redis.AuthenticationError:
        raise RedisAuthFailed(f"Redis at {shown} refused the credentials") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise RedisAuthFailed(f"Redis at {shown} refused the credentials") from None
        raise RedisUnreachable(f"Redis at {shown} answered with an error: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnreachable(f"cannot reach Redis at {shown}: {_reason(exc)}") from None
    text = str(info.get("redis_version", "0"))
    version = tuple(int(part) for part in text.split(".") if part.isdigit())
    if version[:2] < min_version:
        need = ".".join(map(str, min_version))
        raise RedisTooOld(f"Redis {text} at {shown} is too old: ciqueue-gha needs Redis >= {need}")
    return version


def _reason(exc: BaseException) -> str:
    # redis-py's messages repeat the host; keep the first line, which names the OS error.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
