"""The claim on a worker id (queue/claim.py) against a real redis-server: who gets which id,
when a claim runs out, what giving it back does, and what the summary is told. Claims are
expired deterministically by rewriting their deadline in Redis."""

from __future__ import annotations

import time

import pytest
import redis

from ciqueue_gha.errors import UsageError
from ciqueue_gha.protocol.keys import BuildKeys
from ciqueue_gha.queue import claim

TIMEOUT = 30.0


def expire(client: redis.Redis, keys: BuildKeys, worker_id: str) -> None:
    """Make `worker_id`'s claim look as if its holder died long ago."""
    token = client.hget(keys.key("claims"), worker_id).split(" ")[0]
    client.hset(keys.key("claims"), worker_id, f"{token} 0")


def test_the_first_process_gets_the_id_and_the_next_ones_their_own(
    client: redis.Redis, keys: BuildKeys
) -> None:
    first, second, third = (claim.claim(client, keys, "w", TIMEOUT) for _ in range(3))
    assert [first.worker_id, second.worker_id, third.worker_id] == ["w", "w~2", "w~3"]
    assert (first.collided, second.collided, third.collided) == (False, True, True)
    assert len({first.token, second.token, third.token}) == 3
    assert claim.collisions(client, keys) == {"w": ["w~2", "w~3"]}
    assert claim.collision_lines(client, keys) == [
        "ciqueue-gha: WARNING: worker id w was given to 3 live processes at once; the later "
        "ones ran as w~2, w~3 (give each worker its own id)"
    ]
    assert client.ttl(keys.key("claims")) > 0 and client.ttl(keys.key("collisions")) > 0


def test_ids_of_a_build_attempt_are_its_own(client: redis.Redis, keys: BuildKeys) -> None:
    retry = BuildKeys(keys.build_id, keys.attempt + 1)
    assert claim.claim(client, keys, "w", TIMEOUT).worker_id == "w"
    assert claim.claim(client, retry, "w", TIMEOUT).worker_id == "w"
    assert claim.collisions(client, keys) == claim.collisions(client, retry) == {}


def test_a_claim_whose_holder_died_runs_out(client: redis.Redis, keys: BuildKeys) -> None:
    dead = claim.claim(client, keys, "w", TIMEOUT)
    expire(client, keys, "w")
    after = claim.claim(client, keys, "w", TIMEOUT)
    assert (after.worker_id, after.collided) == ("w", False)
    assert claim.collisions(client, keys) == {}
    # The dead holder, back after all, does not get its id back from the live one.
    assert not claim.keep(client, keys, "w", dead.token, TIMEOUT)
    assert claim.keep(client, keys, "w", after.token, TIMEOUT)


def test_keeping_a_claim_moves_its_deadline(client: redis.Redis, keys: BuildKeys) -> None:
    held = claim.claim(client, keys, "w", 1.0)
    before = int(client.hget(keys.key("claims"), "w").split(" ")[1])
    time.sleep(0.05)
    assert claim.keep(client, keys, "w", held.token, TIMEOUT)
    after = int(client.hget(keys.key("claims"), "w").split(" ")[1])
    assert after >= before + (TIMEOUT - 1.0) * 1000
    # A claim that ran out and is still free is taken again by its holder.
    expire(client, keys, "w")
    assert claim.keep(client, keys, "w", held.token, TIMEOUT)
    assert claim.claim(client, keys, "w", TIMEOUT).worker_id == "w~2"


def test_giving_the_id_back_frees_it_and_only_its_holder_can(
    client: redis.Redis, keys: BuildKeys
) -> None:
    first = claim.claim(client, keys, "w", TIMEOUT)
    second = claim.claim(client, keys, "w", TIMEOUT)
    claim.release(client, keys, claim.Claim("w", "w", second.token))  # not its id: no effect
    assert claim.claim(client, keys, "w", TIMEOUT).worker_id == "w~3"
    claim.release(client, keys, first)
    assert claim.claim(client, keys, "w", TIMEOUT).worker_id == "w"


def test_too_many_live_processes_under_one_id_is_a_usage_error(
    client: redis.Redis, keys: BuildKeys
) -> None:
    for _ in range(claim.MAX_IDS):
        claim.claim(client, keys, "w", TIMEOUT)
    with pytest.raises(UsageError, match="give each worker its own --worker-id"):
        claim.claim(client, keys, "w", TIMEOUT)


def test_the_keeper_thread_keeps_a_claim_alive_past_its_timeout(
    client: redis.Redis, keys: BuildKeys
) -> None:
    timeout = 1.0
    held = claim.claim(client, keys, "w", timeout)
    claim.keep_alive(client, keys, "w", held.token, timeout, interval=0.1)
    time.sleep(3 * timeout)
    assert claim.claim(client, keys, "w", TIMEOUT).worker_id == "w~2"
