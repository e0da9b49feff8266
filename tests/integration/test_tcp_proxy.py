"""The fault-injecting TCP proxy that lease and chaos tests stand on: each fault does its job."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
import redis

from ciqueue_gha.connection import connect
from ciqueue_gha.redis_server import PrivateRedis
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def proxy(redis_server: PrivateRedis) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", redis_server.port) as running:
        yield running


def test_a_dropped_reply_reaches_the_server_and_the_client_retries(
    proxy: TcpProxy, client: redis.Redis
) -> None:
    with closing(connect(proxy.url())) as through:
        through.ping()
        proxy.drop_next_reply()
        assert through.incr("proxy-drop-counter") == 2  # ran twice: once lost, once retried
        assert proxy.dropped_replies == 1
        assert proxy.accepted == 2
        assert int(client.get("proxy-drop-counter") or 0) == 2
        assert through.ping()  # disarmed after one reply
        assert proxy.dropped_replies == 1


def test_reset_closes_every_connection_and_clients_reconnect(proxy: TcpProxy) -> None:
    with closing(connect(proxy.url())) as first, closing(connect(proxy.url())) as second:
        first.ping()
        second.ping()
        assert proxy.accepted == 2
        proxy.reset()
        assert first.ping()
        assert second.ping()
        assert proxy.accepted == 4


def test_pause_holds_traffic_until_resume(proxy: TcpProxy) -> None:
    with closing(connect(proxy.url())) as through, ThreadPoolExecutor(1) as pool:
        through.ping()
        proxy.pause()
        started = time.monotonic()
        pong = pool.submit(through.ping)
        time.sleep(0.3)
        assert not pong.done()
        proxy.resume()
        assert pong.result(timeout=5)
        assert time.monotonic() - started >= 0.3


def test_stop_ends_every_thread(redis_server: PrivateRedis) -> None:
    proxy = TcpProxy("127.0.0.1", redis_server.port).start()
    with closing(connect(proxy.url())) as through:
        through.ping()
        proxy.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("tcp-proxy")]
    with pytest.raises(redis.ConnectionError):
        connect(proxy.url(), retry_budget=0).ping()
