"""The build record: every attempt and the final result of every test, as kept in Redis.

Scripts store an attempt's JSON under its lease id and never parse it; Python writes it
(`AttemptRecord.to_json`) and reads it back here.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import defaults
from ..keys import BuildKeys

OUTCOMES = ("passed", "failed", "error", "skipped")

#: Made once: `json.dumps` with any option builds a new encoder each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects that form no cycles:
    otherwise it re-scans them again and again (loading 100,000 attempts took twice as long)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class CaseRecord:
    """One pytest test case's result within an attempt (a unit may hold several)."""

    nodeid: str
    outcome: str
    duration: float = 0.0
    message: str = ""
    longrepr: str = ""
    file: str = ""
    line: int = 0  # 1-based; 0 when unknown
    output: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class AttemptRecord:
    """One execution of one queued unit (a test, or a file of tests) under one lease.

    The unit's outcome is the worst of its cases'; `cases` holds each test's own result.
    """

    test: str
    outcome: str
    worker: str = ""
    lease: int = 0
    duration: float = 0.0
    started_at: float = 0.0
    longrepr: str = ""
    file: str = ""
    line: int = 0
    output: str = ""
    cases: list[CaseRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies every field, a tenth of a millisecond a
        # test on the worker's hot path; both classes hold plain JSON values only.
        fields = {**vars(self), "cases": [vars(case) for case in self.cases]}
        return _ENCODER.encode(fields)

    @classmethod
    def from_json(cls, text: str) -> AttemptRecord:
        fields = json.loads(text)
        fields["cases"] = [CaseRecord(**case) for case in fields.get("cases", [])]
        return cls(**fields)


@dataclass
class Attempt:
    """An attempt as the build record holds it, with what the queue made of it."""

    record: AttemptRecord
    disposition: str  # final | stale | requeued


@dataclass
class BuildRecord:
    """What Redis holds of one build attempt, read in a handful of commands."""

    populated: bool
    tests: list[str]
    results: dict[str, AttemptRecord]
    attempts: dict[str, list[Attempt]]
    takeovers: dict[str, int]
    strays: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed_or_unfinished(self) -> list[str]:
        """Units a retry of this attempt runs again: failed ones and those never finished."""
        return [
            test for test in self.tests if test not in self.results or self.results[test].failed
        ]

    @property
    def missing(self) -> list[str]:
        """Populated tests with no final result, in queue order."""
        return [test for test in self.tests if test not in self.results]

    @classmethod
    def load_attempts(cls, client: redis.Redis, keys: BuildKeys) -> list[BuildRecord]:
        """The records of attempts 1 to `keys.attempt` still in Redis, oldest first."""
        with cyclic_gc_paused():
            numbers = range(1, keys.attempt)
            records = [cls.load(client, BuildKeys(keys.build_id, n)) for n in numbers]
            loaded = [record for record in records if record.populated] + [cls.load(client, keys)]
        # The records hold no cycles and live as long as the summary: out of the collector's
        # sight, they cost the JUnit and report phases no scans (a third of their time at
        # 100,000 tests). Reference counting still frees them.
        gc.freeze()
        return loaded

    @classmethod
    def load(cls, client: redis.Redis, keys: BuildKeys) -> BuildRecord:
        pipe = client.pipeline(transaction=False)
        pipe.exists(keys.key("ready"))
        pipe.lrange(keys.key("tests"), 0, -1)
        pipe.hgetall(keys.key("results"))
        pipe.hgetall(keys.key("attempts"))
        pipe.hgetall(keys.key("dispositions"))
        pipe.hgetall(keys.key("takeovers"))
        pipe.hgetall(keys.key("strays"))
        populated, tests, results, attempts, dispositions, takeovers, strays = pipe.execute()
        by_lease = {lease: AttemptRecord.from_json(text) for lease, text in attempts.items()}
        history: dict[str, list[Attempt]] = {}
        for lease in sorted(by_lease, key=int):
            record = by_lease[lease]
            history.setdefault(record.test, []).append(
                Attempt(record, dispositions.get(lease, "stale"))
            )
        return cls(
            populated=bool(populated),
            tests=tests,
            results={test: by_lease[lease] for test, lease in results.items()},
            attempts=history,
            takeovers={test: int(count) for test, count in takeovers.items()},
            strays={worker: json.loads(text) for worker, text in strays.items()},
        )

    @staticmethod
    def add_strays(client: redis.Redis, keys: BuildKeys, worker: str, tests: list[str]) -> None:
        """Record tests `worker` collected that the queue does not hold, so none is lost
        without a word: the summary reports them as not run."""
        pipe = client.pipeline(transaction=False)
        pipe.hset(keys.key("strays"), worker, json.dumps(tests))
        pipe.expire(keys.key("strays"), defaults.KEY_TTL)
        pipe.execute()
