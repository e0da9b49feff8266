"""One worker id, one process: a claim on the worker id in Redis, per build attempt.

Two live processes under one worker id (two workflows' jobs both passing
``strategy.job-index`` under one run id) would share the id's reservations, and so its
leases: one test run twice at once, one result dropped. So a worker claims its id at start
with a random token, and its heartbeat helper keeps the claim alive (`keep_alive`) every
heartbeat interval, for as long as the lease timeout. A second process that finds the id held
by a live other token runs as ``<id>~2`` (``~3``, ...): an identity of its own, with its own
leases. The collision is recorded, and the summary reports it in one line
(`collision_lines`). A claim whose holder died runs out after the lease timeout; a worker
ending cleanly gives its id back at once (`release`).

Claims live in keys of their own (keys.CLAIM_KEYS), which queue scripts only read: a claimed
worker counts toward a window's fair share, and a tripped breaker's last live worker.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import redis

from .. import defaults
from ..errors import UsageError
from ..protocol.keys import BuildKeys
from ..protocol.scripts import source
from ..truncate import shown

#: Ids tried before giving up: the id itself, then <id>~2 to <id>~MAX_IDS.
MAX_IDS = 100


@dataclass(frozen=True)
class Claim:
    """This process's claim: the id it `asked` for, the `worker_id` it runs as, its token."""

    asked: str
    worker_id: str
    token: str

    @property
    def collided(self) -> bool:
        return self.worker_id != self.asked


def _timeout_ms(timeout: float) -> int:
    return max(1, round(timeout * 1000))


def _claim(client: redis.Redis, keys: BuildKeys, worker_id: str, token: str, *args: int) -> str:
    script = client.register_script(source("claim"))
    taken = script(keys=keys.claim_keys(), args=[worker_id, token, *args])
    return "" if taken is None else str(taken)


def claim(client: redis.Redis, keys: BuildKeys, worker_id: str, timeout: float) -> Claim:
    """Claim `worker_id` (or the first free ``<id>~n``) for this process for `timeout` s."""
    token = secrets.token_hex(8)
    taken = _claim(client, keys, worker_id, token, _timeout_ms(timeout), defaults.KEY_TTL, MAX_IDS)
    if not taken:
        raise UsageError(
            f"worker id {shown(worker_id)} and {MAX_IDS - 1} more like it are in use by live "
            "processes of this build: give each worker its own --worker-id"
        )
    return Claim(worker_id, taken, token)


def keep(client: redis.Redis, keys: BuildKeys, worker_id: str, token: str, timeout: float) -> bool:
    """Extend the claim on `worker_id` under `token` (taking it again if it ran out and is
    free); False when another live process holds it now."""
    ms = _timeout_ms(timeout)
    return bool(_claim(client, keys, worker_id, token, ms, defaults.KEY_TTL, 1))


def release(client: redis.Redis, keys: BuildKeys, held: Claim) -> None:
    """Give the id back at a clean end, so a later process under it is no collision."""
    script = client.register_script(source("unclaim"))
    script(keys=keys.claim_keys(), args=[held.worker_id, held.token])


def keep_alive(
    client: redis.Redis,
    keys: BuildKeys,
    worker_id: str,
    token: str,
    timeout: float,
    interval: float,
) -> threading.Thread:
    """Keep the claim alive every `interval` seconds from a daemon thread of the heartbeat
    helper (outside the worker's interpreter, like its heartbeats) until the process ends.
    A Redis error is tried again at the next interval; a lost claim is said once."""

    def loop() -> None:
        warned = False
        while True:
            time.sleep(interval)
            try:
                kept = keep(client, keys, worker_id, token, timeout)
            except Exception:  # Redis down: the next interval tries again
                continue
            if not kept and not warned:
                warned = True
                print(
                    f"ciqueue-gha: WARNING: another process now holds worker id {worker_id}",
                    file=sys.stderr,
                    flush=True,
                )

    thread = threading.Thread(target=loop, name="ciqueue-claim", daemon=True)
    thread.start()
    return thread


def collisions(client: redis.Redis, keys: BuildKeys) -> dict[str, list[str]]:
    """Each worker id that two live processes were given, and the ids the later ones ran as."""
    taken: dict[str, list[str]] = defaultdict(list)
    for worker_id, asked in sorted(client.hgetall(keys.key("collisions")).items()):
        taken[str(asked)].append(str(worker_id))
    return dict(taken)


def collision_lines(client: redis.Redis, keys: BuildKeys) -> list[str]:
    """One line per worker id given to more than one live process, for the summary."""
    return [
        f"ciqueue-gha: WARNING: worker id {asked} was given to {len(others) + 1} live processes "
        f"at once; the later ones ran as {', '.join(others)} (give each worker its own id)"
        for asked, others in collisions(client, keys).items()
    ]
