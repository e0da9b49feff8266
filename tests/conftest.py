"""Fixtures shared by every test: a real redis-server, never a fake."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from tests.support.redis_server import ControlledRedis

_build_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ControlledRedis]:
    """One private redis-server for the session; tests keep apart by build id."""
    with ControlledRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: ControlledRedis) -> str:
    return redis_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = connect(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def keys(request: pytest.FixtureRequest) -> BuildKeys:
    """Keys of a build no other test uses."""
    return BuildKeys(
        f"build-{next(_build_numbers)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    )
