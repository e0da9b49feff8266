"""Test durations that outlive a build, so the next leader queues the longest tests first.

Kept as a moving average per queued unit in a Redis hash that is not tied to any build,
and optionally in a JSON file (``--durations-file``) for users without a lasting Redis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from .cluster import keyed
from .errors import UsageError
from .protocol.keys import durations_key

#: Weight of the newest measurement in the moving average.
SMOOTHING = 0.5

#: Durations are forgotten after 30 days without a build refreshing them.
DURATIONS_TTL = 30 * 24 * 3600


def expected(units: Sequence[str], durations: Mapping[str, float]) -> dict[str, float]:
    """Seconds each unit is expected to take: its recorded duration, or the mean of the
    recorded ones for a unit never measured; empty when none of `units` was ever measured."""
    known = [durations[unit] for unit in units if unit in durations]
    if not known:
        return {}
    mean = sum(known) / len(known)
    return {unit: durations.get(unit, mean) for unit in units}


def order_by_duration(units: list[str], durations: Mapping[str, float]) -> list[str]:
    """Longest first; units never measured count as the mean; ties keep collection order."""
    seconds = expected(units, durations)
    if not seconds:
        return list(units)
    return sorted(units, key=lambda unit: -seconds[unit])


def blend(old: Mapping[str, float], new: Mapping[str, float]) -> dict[str, float]:
    """The moving average of `old` with this build's `new` measurements."""
    merged = dict(old)
    for unit, seconds in new.items():
        merged[unit] = (
            seconds if unit not in old else SMOOTHING * seconds + (1 - SMOOTHING) * old[unit]
        )
    return merged


def load_redis(client: redis.Redis, namespace: str) -> dict[str, float]:
    key = durations_key(namespace)  # a slot of its own on a cluster: `keyed`
    raw: dict[str, str] = keyed(client, key).hgetall(key)  # type: ignore[assignment]
    return {unit: float(seconds) for unit, seconds in raw.items()}


def save_redis(client: redis.Redis, namespace: str, durations: Mapping[str, float]) -> None:
    if not durations:
        return
    key = durations_key(namespace)
    pipe = keyed(client, key).pipeline(transaction=False)
    pipe.hset(key, mapping={unit: repr(seconds) for unit, seconds in durations.items()})
    pipe.expire(key, DURATIONS_TTL)
    pipe.execute()


def load_file(path: Path) -> dict[str, float]:
    """Durations from a JSON file ``{unit: seconds}``; a missing file is an empty one."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(unit): float(seconds) for unit, seconds in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise UsageError(
            f"--durations-file {path} is not a JSON object of seconds: {exc}"
        ) from None


def save_file(path: Path, durations: Mapping[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(durations.items())), indent=1) + "\n")
