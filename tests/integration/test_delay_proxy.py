"""The delay proxy the network benchmark stands on: each round trip pays the delay, bytes
arrive whole and in order, and `stop` leaves no thread behind.

Only lower bounds on time are checked: how much longer a loaded machine takes says nothing
about the proxy (benchmarks.network prints the round trip it measures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
import redis

from ciqueue_gha.connection import connect
from tests.support.delay_proxy import DelayProxy, delay_proxy
from tests.support.redis_server import ControlledRedis

ROUND_TRIP = 0.05


@pytest.fixture
def proxy(redis_server: ControlledRedis) -> Iterator[DelayProxy]:
    with delay_proxy("127.0.0.1", redis_server.port, round_trip=ROUND_TRIP) as running:
        yield running


def test_every_round_trip_pays_the_delay(proxy: DelayProxy) -> None:
    with closing(connect(proxy.url())) as through:
        through.ping()  # the connection's handshake, outside the count
        for _ in range(3):
            started = time.perf_counter()
            assert through.ping()
            assert time.perf_counter() - started >= ROUND_TRIP


def test_pipelined_and_large_replies_arrive_whole_and_in_order(
    proxy: DelayProxy, client: redis.Redis
) -> None:
    value = "".join(chr(33 + n % 90) for n in range(2**21))  # 2 MiB: many chunks each way
    with closing(connect(proxy.url())) as through:
        through.set("delay-proxy-large", value)
        pipe = through.pipeline(transaction=False)
        for n in range(200):
            pipe.echo(str(n))
        pipe.get("delay-proxy-large")
        *echoes, large = pipe.execute()
    assert echoes == [str(n) for n in range(200)]
    assert large == value
    assert client.get("delay-proxy-large") == value


def test_a_closed_client_closes_its_server_connection(
    proxy: DelayProxy, client: redis.Redis
) -> None:
    def connections() -> int:
        return len(client.client_list())

    before = connections()
    with closing(connect(proxy.url())) as through:
        through.ping()
        assert connections() == before + 1
        ports = {int(seen["addr"].rsplit(":", 1)[1]) for seen in client.client_list()}
        assert proxy.upstream_ports <= ports  # how the server tells the proxy's clients
        assert len(proxy.upstream_ports) == 1
    deadline = time.monotonic() + 10
    while connections() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert connections() == before
    assert proxy.accepted == 1


def test_stop_ends_every_thread_it_started(redis_server: ControlledRedis) -> None:
    with delay_proxy("127.0.0.1", redis_server.port, round_trip=ROUND_TRIP) as proxy:
        held = [connect(proxy.url()) for _ in range(3)]
        for through in held:
            through.ping()
    assert not [t for t in threading.enumerate() if t.name.startswith("delay-proxy")]
    for through in held:
        through.close()


def test_a_negative_round_trip_is_refused(redis_server: ControlledRedis) -> None:
    with pytest.raises(ValueError, match="cannot take"):
        DelayProxy("127.0.0.1", redis_server.port, round_trip=-1)
