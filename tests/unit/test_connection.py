"""URLs, redaction, TLS options and the version knob: everything of connection.py that needs
no server. Clients are built but never used: redis-py connects on the first command."""

from __future__ import annotations

import pytest

from ciqueue_gha.connection import connect, redact, validate_url
from ciqueue_gha.errors import UsageError

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@host:6379/0", "redis://:***@host:6379/0"),
        (f"redis://user:{SECRET}@host:6379/0", "redis://user:***@host:6379/0"),
        (
            f"rediss://user:{SECRET}@redis.example.com:6380/2",
            "rediss://user:***@redis.example.com:6380/2",
        ),
        (f"rediss://:{SECRET}@host", "rediss://:***@host"),
        (f"redis://host:6379/0?password={SECRET}", "redis://host:6379/0?password=***"),
        (
            f"redis://host/0?client_name=w1&password={SECRET}&db=1",
            "redis://host/0?client_name=w1&password=***&db=1",
        ),
        (f"redis://user:{SECRET}@host/0?password={SECRET}", "redis://user:***@host/0?password=***"),
        (f"redis://user:{SECRET}@[::1]:6379", "redis://user:***@[::1]:6379"),
        (f"unix://:{SECRET}@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        (f"unix:///run/redis.sock?password={SECRET}", "unix:///run/redis.sock?password=***"),
        # Characters a URL parser would stop at: the whole password still goes.
        (f"redis://:{SECRET}#/?x@@host:6379", "redis://:***@host:6379"),
        (f"redis://:p%40{SECRET}@host", "redis://:***@host"),
        # No colon: some tools read this as a password, so it is hidden whole.
        (f"redis://{SECRET}@host", "redis://***@host"),
        # Not even a URL: still nothing of the password.
        (f":{SECRET}@host:6379", ":***@host:6379"),
    ],
)
def test_redact_hides_the_password_in_every_form(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert SECRET not in redact(url)


@pytest.mark.parametrize(
    "url", ["redis://host:6379/0", "rediss://user@host", "unix:///run/redis.sock", "garbage"]
)
def test_redact_leaves_a_url_without_password_alone(url: str) -> None:
    expected = url.replace("user@", "***@")  # a lone user info is hidden anyway
    assert redact(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://localhost:6379",
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@redis.example.com:6380/15",
        "redis://[::1]:6379",
        "redis://:p%23ss%2Fw%3Frd%40@host",
        "redis://host/0?socket_timeout=2.5&client_name=w1&health_check_interval=10",
        "redis://host?password=pw&username=u&db=3",
        "unix:///run/redis.sock",
        "unix:///run/redis.sock?db=1",
    ],
)
def test_validate_url_accepts_usable_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost:6379", "scheme"),
        ("ftp://localhost", "scheme"),
        ("localhost:6379", "scheme"),
        ("garbage", "scheme"),
        ("", "scheme"),
        ("redis://localhost:notaport", "port"),
        ("redis://:99999", "port"),
        ("redis://localhost:0", "port"),
        ("redis://", "no host"),
        ("rediss:///0", "no host"),
        ("unix://", "socket path"),
        ("redis://localhost/db1", "database"),
        ("redis://[::1", "IPv6"),
        ("redis://localhost/0?foo=bar", "unsupported query parameter 'foo'"),
        ("redis://localhost/0?socket_timeout=soon", "socket_timeout must be a number"),
        ("rediss://localhost/0?ssl_cert_reqs=none", "ssl_cert_reqs"),
        ("rediss://localhost/0?ssl_check_hostname=false", "ssl_check_hostname"),
        ("redis://:pa#ss@localhost", "percent-encode"),
        ("redis://:pa/ss@localhost", "percent-encode"),
    ],
)
def test_validate_url_rejects_and_names_the_problem(url: str, problem: str) -> None:
    with pytest.raises(UsageError, match="malformed Redis URL") as raised:
        validate_url(url)
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{SECRET}@host",
        f"redis://:{SECRET}@host:notaport",
        f"redis://:{SECRET}@host/db",
        f"redis://:{SECRET}#x@host",
        f"redis://:{SECRET}?x@host:6379",
        f"redis://host/0?password={SECRET}&foo=1",
    ],
)
def test_validate_url_never_echoes_the_password(url: str) -> None:
    with pytest.raises(UsageError) as raised:
        validate_url(url)
    assert SECRET not in str(raised.value)
    assert "***" in str(raised.value)


def test_connect_verifies_tls_by_default() -> None:
    kwargs = connect("rediss://redis.example.com:6380").connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True


def test_connect_trusts_a_given_ca_file() -> None:
    kwargs = connect("rediss://h", ca_file="/etc/ca.pem").connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert kwargs["ssl_cert_reqs"] == "required"


def test_insecure_tls_is_loud(capsys: pytest.CaptureFixture[str]) -> None:
    client = connect(f"rediss://:{SECRET}@h:6380", verify_tls=False)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["ssl_check_hostname"] is False
    err = capsys.readouterr().err
    assert "WARNING: TLS certificate verification is OFF for rediss://:***@h:6380" in err
    assert SECRET not in err


def test_plain_redis_has_no_tls_and_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    kwargs = connect("redis://h", verify_tls=False).connection_pool.connection_kwargs
    assert "ssl_cert_reqs" not in kwargs
    assert capsys.readouterr().err == ""
    with pytest.raises(UsageError, match="rediss://"):
        connect("redis://h", ca_file="/etc/ca.pem")


def test_connect_rejects_a_malformed_url_before_anything_else() -> None:
    with pytest.raises(UsageError, match="scheme"):
        connect("http://h")
