"""Connections to Redis: URL checks, TLS, retries with backoff, and the server check.

Messages never contain a password: URLs are shown through `redact`.
"""

from __future__ import annotations

import re
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import defaults
from .errors import (
    RedisAuthFailed,
    RedisTooOld,
    RedisUnreachable,
    UsageError,
)
from .truncate import shown as cut_value

SCHEMES = ("redis", "rediss", "unix")

#: Query parameters a Redis URL may carry, and whether each must be a number. redis-py hands
#: any other one to the connection as a keyword (a crash at the first command), and its
#: ``ssl_*`` ones would turn certificate checks off silently: those go through the options.
QUERY_PARAMETERS = {
    "db": True,
    "username": False,
    "password": False,
    "client_name": False,
    "socket_timeout": True,
    "socket_connect_timeout": True,
    "health_check_interval": True,
}

# Everything between the scheme and the last '@' is user info, whatever characters a
# password holds; a URL parser would stop at an unencoded '/', '?' or '#' and show the rest.
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<userinfo>.*)@", re.DOTALL)
_QUERY_PASSWORD = re.compile(r"(?P<name>[?&;]password=)[^&;#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """`url` with any password (user info or ``?password=``) replaced by ``***``; safe to log.

    A user info without a colon is hidden whole: some tools read ``redis://secret@host`` as
    a password.
    """

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        return f"{match['head'] or ''}{user}:***@" if colon else f"{match['head'] or ''}***@"

    return _QUERY_PASSWORD.sub(r"\g<name>***", _USERINFO.sub(hide, url, count=1))


def validate_url(url: str) -> str:
    """Return `url` if it is a usable Redis URL, else raise `UsageError` saying why.

    Messages name the problem but never echo a part of the URL that could be a password.
    """
    shown = cut_value(redact(url), quote=False)

    def malformed(why: str) -> UsageError:
        return UsageError(f"malformed Redis URL {shown}: {why}")

    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket, say
        raise malformed(str(exc)) from None
    if parts.scheme not in SCHEMES:
        raise malformed("the scheme must be redis://, rediss:// or unix://")
    if parts.fragment or "@" in parts.path or ("@" in parts.query and "@" not in parts.netloc):
        raise malformed("percent-encode '/', '?', '#' and '@' in a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise malformed("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise malformed("the port must be a number from 1 to 65535")
    if parts.scheme == "unix":
        if not parts.path:
            raise malformed("unix:// needs a socket path, as in unix:///run/redis.sock")
    else:
        if not parts.hostname:
            raise malformed("no host")
        try:  # what the resolver would choke on, with a traceback
            parts.hostname.encode("idna")
        except UnicodeError:
            raise malformed("the host is not a valid host name") from None
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise malformed("the database (the path) must be a number")
    _check_query(parts.query, malformed)
    return url


def _check_query(query: str, malformed: Callable[[str], UsageError]) -> None:
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.startswith("ssl"):
            raise malformed(
                f"{name} is not read from the URL: TLS is verified unless --insecure-tls"
            )
        if name not in QUERY_PARAMETERS:
            raise malformed(f"unsupported query parameter {name!r}")
        if QUERY_PARAMETERS[name] and not _is_number(value):
            raise malformed(f"{name} must be a number")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


T = TypeVar("T")


class BoundedRetry(Retry):
    """redis-py's retry with a time budget instead of a count: a failing call is retried with
    backoff until `budget` seconds have passed since it began, never longer. The budget spans
    the retries nested inside it (a reconnect retries on its own in redis-py), so a server that
    stopped answering fails a call within the budget plus one socket timeout, however many
    layers retry.
    """

    def __init__(
        self, budget: float, supported_errors: tuple[type[Exception], ...] | None = None
    ) -> None:
        backoff = ExponentialBackoff(cap=defaults.BACKOFF_CAP, base=defaults.BACKOFF_BASE)
        super().__init__(backoff, -1)
        if supported_errors:
            self._supported_errors = supported_errors
        self.budget = budget
        self._deadline: float | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> BoundedRetry:  # redis-py copies it
        return BoundedRetry(self.budget, self._supported_errors)

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        outermost = self._deadline is None
        if outermost:
            self._deadline = time.monotonic() + self.budget
        try:
            return self._retry(do, fail, is_retryable, with_failure_count)
        finally:
            if outermost:
                self._deadline = None

    def _retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
    ) -> T:
        assert self._deadline is not None
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                pause = self._backoff.compute(failures)
                if time.monotonic() + pause >= self._deadline:
                    raise
                time.sleep(pause)


def _first_contact_retry(budget: float) -> Retry:
    # Only a refused or dropped connection: a timeout means a server that accepted and said
    # nothing (or a TLS client talking to a plain port), which will not answer a second time.
    return BoundedRetry(budget, (redis.ConnectionError,))


def _tls_options(url: str, verify_tls: bool, ca_file: str | None) -> dict[str, object]:
    if not url.startswith("rediss://"):
        if ca_file:
            raise UsageError("a CA file for TLS needs a rediss:// URL")
        return {}
    if verify_tls:
        return {"ssl_cert_reqs": "required", "ssl_check_hostname": True, "ssl_ca_certs": ca_file}
    print(
        "ciqueue-gha: WARNING: TLS certificate verification is OFF for "
        f"{redact(url)}; anyone on the path can read and change the queue",
        file=sys.stderr,
    )
    return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}


def connect(
    url: str,
    *,
    verify_tls: bool = True,
    ca_file: str | None = None,
    retry_budget: float = defaults.RETRY_BUDGET,
    socket_timeout: float = defaults.SOCKET_TIMEOUT,
) -> redis.Redis:
    """A client for `url` that retries a failing call with exponential backoff for up to
    `retry_budget` seconds (see `BoundedRetry`); a reply may take `socket_timeout` seconds.

    ``rediss://`` verifies the server's certificate (against `ca_file` when given, else the
    system's CAs) and its host name, unless `verify_tls` is False, which says so loudly on
    stderr. Nothing is sent until the first command.
    """
    validate_url(url)
    options = _tls_options(url, verify_tls, ca_file)
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, defaults.CONNECT_TIMEOUT),
            retry=BoundedRetry(retry_budget),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            **options,
        )
    except ValueError as exc:
        raise UsageError(f"malformed Redis URL {redact(url)}: {exc}") from None


def patient(client: redis.Redis, socket_timeout: float) -> redis.Redis:
    """A client like `client` (same server, credentials, TLS, retries) whose replies may take
    `socket_timeout` seconds: for the one call whose work grows with its request (populate)."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": socket_timeout}
    return redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))


class Server(NamedTuple):
    """A client whose server was reached and checked, the server's version, and whether it
    said it is a cluster node (None: it did not say)."""

    client: redis.Redis
    version: tuple[int, ...]
    cluster: bool | None = None


def open_server(url: str, *, verify_tls: bool = True, retry: bool = True) -> Server:
    """How every command opens Redis: `connect`, then `check_server`, each with its retry
    budget; without `retry`, one try of each (for a server about to be shut down)."""
    budget = defaults.RETRY_BUDGET if retry else 0
    client = connect(url, verify_tls=verify_tls, retry_budget=budget)
    first_budget = defaults.FIRST_CONTACT_BUDGET if retry else 0
    return Server(client, *reach_server(client, url, retry_budget=first_budget))


def check_server(
    client: redis.Redis,
    url: str,
    min_version: tuple[int, int] | None = None,
    *,
    retry_budget: float = defaults.FIRST_CONTACT_BUDGET,
) -> tuple[int, ...]:
    """Reach the server and check it can run the scripts; returns its version.

    This is the first contact, so it retries only a refused connection, for `retry_budget`
    seconds: a wrong URL, a server that is not there or one that never answers fails in about
    two seconds. The client keeps its own retries (longer, to ride out a drop in the middle of
    a run) for every call after. `min_version` defaults to `defaults.MIN_REDIS_VERSION`.

    Raises `RedisUnreachable`, `RedisAuthFailed` or `RedisTooOld` with a one-line message.
    """
    return reach_server(client, url, min_version, retry_budget=retry_budget)[0]


def reach_server(
    client: redis.Redis,
    url: str,
    min_version: tuple[int, int] | None = None,
    *,
    retry_budget: float = defaults.FIRST_CONTACT_BUDGET,
) -> tuple[tuple[int, ...], bool | None]:
    """`check_server`, and whether the server said it is a cluster node (its INFO's mode;
    None: not said): a server that says it is standalone is not asked for a cluster map,
    two round trips saved for every process of a build."""
    info = _first_contact(client, url, retry_budget)
    text = str(info.get("redis_version", "0"))
    version = tuple(int(part) for part in text.split(".") if part.isdigit())
    need_version = min_version or defaults.MIN_REDIS_VERSION
    if version[:2] < need_version:
        need = ".".join(map(str, need_version))
        shown = redact(url)
        raise RedisTooOld(f"Redis {text} at {shown} is too old: ciqueue-gha needs Redis >= {need}")
    warn_if_evicting(info, url)
    mode = info.get("redis_mode", info.get("server_mode"))  # Valkey 8+: server_mode
    return version, None if mode not in ("standalone", "cluster") else mode == "cluster"


def _first_contact(client: redis.Redis, url: str, retry_budget: float) -> dict[str, Any]:
    """The server's INFO (its default sections: the server's and the memory's, in one
    round trip), retrying only a refused connection; every failure one line."""
    shown = redact(url)
    kept = client.get_retry()
    client.set_retry(_first_contact_retry(retry_budget))
    try:
        info: dict[str, Any] = client.info()
    except redis.AuthenticationError:
        raise RedisAuthFailed(f"Redis at {shown} refused the credentials") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise RedisAuthFailed(f"Redis at {shown} refused the credentials") from None
        raise RedisUnreachable(f"Redis at {shown} answered with an error: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        failed = _tls_verification_failure(exc)
        if failed is not None:
            raise RedisUnreachable(
                f"TLS certificate verification failed for {shown}: {failed}"
            ) from None
        raise RedisUnreachable(f"cannot reach Redis at {shown}: {_reason(exc)}") from None
    finally:
        if kept is not None:
            client.set_retry(kept)
    return info


def eviction_policy(info: dict[str, Any]) -> str | None:
    """The server's maxmemory-policy (from its `info`) when it may evict the queue's keys,
    else None.

    Only ``noeviction`` is safe: every key of a build has a TTL, so the ``volatile-*``
    policies can evict them as readily as the ``allkeys-*`` ones. A server that does not
    say is not warned about.
    """
    policy = str(info.get("maxmemory_policy", "noeviction"))
    return None if policy == "noeviction" else policy


def warn_if_evicting(info: dict[str, Any], url: str) -> None:
    """One line on stderr when Redis may evict the queue's keys (a build's state then is
    lost: the summary says so, exit 4, but the build is wasted)."""
    policy = eviction_policy(info)
    if policy is not None:
        print(
            f"ciqueue-gha: WARNING: Redis at {redact(url)} has maxmemory-policy {policy}: "
            "it may evict the queue's keys under memory pressure and lose the build's state; "
            "use maxmemory-policy noeviction",
            file=sys.stderr,
        )


def _tls_verification_failure(exc: BaseException) -> str | None:
    """Why the server's certificate was refused, and what to do, if `exc` comes from that."""
    cause: BaseException | None = exc
    reason = None
    while cause is not None and reason is None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = str(cause.verify_message or cause.reason).rstrip(".")
        cause = cause.__cause__ or cause.__context__
    if reason is None:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            return None
        reason = "the server's certificate is not trusted"  # redis-py kept only the text
    if "mismatch" in reason:
        return f"{reason} (use a host name the certificate names, or --insecure-tls)"
    return f"{reason} (trust its CA with SSL_CERT_FILE=ca.pem, or pass --insecure-tls)"


def _reason(exc: BaseException) -> str:
    # redis-py's messages repeat the host; keep the first line, which names the OS error.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
