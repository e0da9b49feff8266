"""A build over a slow link (Redis 0.3 s a round trip away, through tests/support's delay
proxy): the time a worker waits for its next lease is the link's, not a test's. Counted as
the test's (its teardown asks which unit comes next), every test that waited would carry a
round trip in the merged JUnit and in the recorded durations, and the lease window, sized
by those times, would stay one lease a call."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import redis

from ciqueue_gha import durations
from ciqueue_gha.options import durations_namespace
from tests.support.delay_proxy import delay_proxy
from tests.support.redis_server import ControlledRedis

ROUND_TRIP = 0.3
TESTS = 12
#: A name no other test's suite uses: their durations share the session's Redis.
FILE = "test_slow_link_quick"


def test_a_wait_for_the_next_lease_is_not_a_tests_time(
    redis_server: ControlledRedis, client: redis.Redis, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    body = "".join(f"def test_{n:02}():\n    pass\n\n\n" for n in range(TESTS))
    (suite / f"{FILE}.py").write_text(body)
    junit = tmp_path / "merged.xml"
    with delay_proxy("127.0.0.1", redis_server.port, round_trip=ROUND_TRIP) as proxy:
        url = redis_server.url.replace(f":{redis_server.port}/", f":{proxy.port}/")
        argv = [sys.executable, "-m", "ciqueue_gha.cli", "run", "--workers", "1"]
        argv += ["--redis-url", url, "--build-id", f"slow-link-{tmp_path.name}"]
        argv += ["--junit-xml", str(junit), "--", "-q", "-p", "no:cacheprovider", "."]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIQUEUE_", "GITHUB_"))}
        done = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    times = [float(case.get("time", "0")) for case in ET.parse(junit).iter("testcase")]
    assert len(times) == TESTS
    # No unit was asked for while one ran (nothing was recorded: a first window of one),
    # so the first test's teardown waited a round trip at least.
    assert max(times) < ROUND_TRIP / 2, times
    kept = durations.load_redis(client, durations_namespace())
    recorded = {unit: seconds for unit, seconds in kept.items() if unit.startswith(FILE)}
    assert len(recorded) == TESTS and max(recorded.values()) < ROUND_TRIP / 2, recorded
