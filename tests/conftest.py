"""Fixtures shared by every test: a real redis-server, never a fake. And how ./check spreads
the tests over pytest-xdist workers (tests/support/scheduling.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.protocol.keys import BuildKeys
from tests.support.child_pytest import skip_unused_plugins
from tests.support.redis_server import ControlledRedis
from tests.support.scheduling import ModuleGroups, first_in_line

if TYPE_CHECKING:
    from tests.support.fake_github import FakeGitHub

_build_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ControlledRedis]:
    """One private redis-server for the session (for each xdist worker); tests keep apart by
    build id."""
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


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """The local stand-in for GitHub's API; the test fails if it was sent a body GitHub would
    refuse."""
    from tests.support.fake_github import FakeGitHub  # its API models load only for these

    server = FakeGitHub().start()
    yield server
    server.stop()
    assert not server.invalid, f"bodies GitHub would refuse: {server.invalid}"


def pytest_configure(config: pytest.Config) -> None:
    """The pytest processes the tests start skip the plugins they do not use. Set in the
    process that runs tests, not in xdist's controller: its workers keep every plugin."""
    if not (config.getoption("numprocesses", None) and not hasattr(config, "workerinput")):
        skip_unused_plugins(os.environ)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return ModuleGroups(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On an xdist worker, the longest tests first: the order the tests are handed out in."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=first_in_line)
