"""An attempt's verdict: what a retry of it needs, kept as long as GitHub allows re-runs.

A build's keys live 3 days (`defaults.KEY_TTL`); GitHub lets a run be re-run for 30. The
summary of every attempt leaves its verdict, small and compressed, for `VERDICT_TTL`: the
whole suite's size, the cases done for good (by outcome), and the units a retry must run
again (failed or unfinished). A retry on day 10 queues just those, and its summary still
reports the whole suite.

Cost: one string key per attempt, about 60 bytes plus a compressed list of the units to run
again (tests/integration/test_verdict.py measures it: 20,000 tests with 1 % failed).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field

import redis

from .. import defaults
from ..protocol.keys import BuildKeys
from .record import BuildRecord


@dataclass(frozen=True)
class AttemptVerdict:
    """The whole suite as the summary of `attempt` left it.

    `kept` counts the test cases of units done for good (not in `rerun`), by final outcome;
    `rerun` holds the units a retry runs again, in suite order.
    """

    attempt: int
    exit_code: int
    units: int
    kept: dict[str, int] = field(default_factory=dict)
    rerun: list[str] = field(default_factory=list)

    @property
    def kept_cases(self) -> int:
        return sum(self.kept.values())

    @classmethod
    def of(
        cls,
        attempt: int,
        exit_code: int,
        records: list[BuildRecord],
        carried: AttemptVerdict | None = None,
    ) -> AttemptVerdict:
        """The verdict of the merged `records` (oldest first), on top of the verdict of an
        earlier attempt whose records are gone (`carried`)."""
        units = list(dict.fromkeys(unit for record in records for unit in record.units))
        kept: Counter[str] = Counter(carried.kept if carried else {})
        rerun: list[str] = []
        for unit in units:
            final = next((r.results[unit] for r in reversed(records) if unit in r.results), None)
            if final is None or final.failed:
                rerun.append(unit)
            else:
                kept.update(case.outcome for case in final.cases)
        total = len(units)
        if carried is not None:
            # The carried attempt's units run again here are among `units` already.
            seen = set(units)
            rerun = [unit for unit in carried.rerun if unit not in seen] + rerun
            total += carried.units - len(set(carried.rerun) & seen)
        return cls(attempt, exit_code, total, dict(kept), rerun)

    def to_text(self) -> str:
        fields = {
            "attempt": self.attempt,
            "exit_code": self.exit_code,
            "units": self.units,
            "kept": self.kept,
            "rerun": self.rerun,
        }
        packed = zlib.compress(json.dumps(fields, separators=(",", ":")).encode(), 9)
        return base64.b85encode(packed).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> AttemptVerdict:
        fields = json.loads(zlib.decompress(base64.b85decode(text)))
        return cls(**fields)

    def save(self, client: redis.Redis, build_id: str) -> None:
        key = BuildKeys(build_id, self.attempt).key("verdict")
        client.set(key, self.to_text(), ex=defaults.VERDICT_TTL)

    @classmethod
    def load(cls, client: redis.Redis, keys: BuildKeys) -> AttemptVerdict | None:
        """The verdict of attempt `keys.attempt`, or None when none was left (or it is not
        readable: then it is as good as gone)."""
        text = client.get(keys.key("verdict"))
        if text is None:
            return None
        try:
            return cls.from_text(str(text))
        except (ValueError, TypeError, zlib.error):
            return None
