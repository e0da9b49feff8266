"""What a running build has done so far, read from Redis for the displays that follow it.

The supervisor looks at the queue's counts many times a second (`QueueStatus`); this module
reads the rest only when asked and only when the counts moved and something needs it: which
units were finalized since the last read (one ``HGETALL`` of the results, of lease ids only),
when durations are recorded (the units left) or the failed count grew, and the attempt
records of those only when the failed count grew (a failure's message and location, for the
console and the live check run's annotations). The ETA is the recorded durations of the
units not finalized yet (``durations.py``) over the workers holding a lease now; with no
duration recorded, the units left at the rate seen so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from ..durations import expected
from ..protocol.keys import BuildKeys
from .record import AttemptRecord
from .supervisor import QueueStatus


def holders(leases: list[Any]) -> int:
    """How many workers hold `leases` (values of the leases hash: "<lease id> <worker>")."""
    return len({entry.partition(" ")[2] for entry in leases})


@dataclass(frozen=True)
class Progress:
    """One look at a running build: counts, speed, and the failures new since the last look."""

    total: int
    done: int
    failed: int
    workers: int  # workers holding a lease at this look
    elapsed: float  # seconds since the first look
    left_seconds: float | None  # recorded seconds of the units not finalized; None: unknown
    new_failures: list[AttemptRecord] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Units finalized per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until the last unit is expected done; None while nothing says."""
        if self.done >= self.total:
            return 0.0
        if self.left_seconds is not None:
            return self.left_seconds / max(self.workers, 1)
        if self.rate > 0:
            return (self.total - self.done) / self.rate
        return None


class ProgressReader:
    """Reads a build's progress incrementally: remembers the units seen finalized, so each
    attempt record is read at most once, and only a failed one's is parsed."""

    def __init__(
        self,
        client: redis.Redis,
        keys: BuildKeys,
        durations: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._keys = keys
        self._durations = durations
        self._clock = clock
        self._start: float | None = None
        self._expected: dict[str, float] | None = None  # None: not read yet
        self._left = 0.0
        self._done: set[str] = set()
        self._failed = 0
        self._workers = 0

    def look(self, status: QueueStatus) -> Progress:
        """The build's progress at `status` (a populated one)."""
        now = self._clock()
        if self._start is None:
            self._start = now
        if self._expected is None:
            self._read_units()
        new_failures: list[AttemptRecord] = []
        # The results are read only when they moved and something needs them: the units left
        # (with durations recorded) or a failure's record.
        if status.finalized != len(self._done) and (self._expected or status.failed > self._failed):
            new_failures = self._read_results()
        else:
            self._workers = holders(self._client.hvals(self._keys.key("leases")))
        return Progress(
            total=status.total,
            done=max(len(self._done), status.finalized),
            failed=max(self._failed, status.failed),
            workers=self._workers,
            elapsed=now - self._start,
            left_seconds=max(self._left, 0.0) if self._expected else None,
            new_failures=new_failures,
        )

    def _read_units(self) -> None:
        units: list[str] = self._client.lrange(self._keys.key("tests"), 0, -1)  # type: ignore[assignment]
        self._expected = expected(units, self._durations)
        self._left = sum(self._expected.values())

    def _read_results(self) -> list[AttemptRecord]:
        """Note the units finalized since the last read and the workers holding leases; the
        attempt records of the new ones that failed, read when the failed count grew (read
        with the results in one transaction: a script finalizes a unit and counts it at once)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hgetall(self._keys.key("results"))
        pipe.get(self._keys.key("failed"))
        pipe.hvals(self._keys.key("leases"))
        results, failed, leases = pipe.execute()
        self._workers = holders(leases)
        failures, self._failed = int(failed or 0) > self._failed, int(failed or 0)
        new = {unit: lease for unit, lease in results.items() if unit not in self._done}
        self._done.update(new)
        expected_seconds = self._expected or {}
        self._left -= sum(expected_seconds.get(unit, 0.0) for unit in new)
        if not failures or not new:
            return []
        texts = self._client.hmget(self._keys.key("attempts"), list(new.values()))
        records = (AttemptRecord.from_json(str(text)) for text in texts if text)
        return [record for record in records if record.failed]
