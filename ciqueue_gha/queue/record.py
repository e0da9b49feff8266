"""The build record: every attempt and the final result of every test, as kept in Redis.

Scripts store an attempt's JSON under its lease id and never parse it; Python writes it
(`AttemptRecord.to_json`) and reads it back here.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import redis

from .. import defaults
from ..protocol.keys import BuildKeys

OUTCOMES = ("passed", "failed", "error", "skipped")

#: Keys every populated attempt has, whatever its tests did (populate writes them together);
#: the others (queue, running, leases, results...) are legitimately absent when empty.
STRUCTURAL_KEYS = ("leader", "ready", "total", "digest", "basis")

#: Made once: `json.dumps` with any option builds a new encoder each call. Compact: Redis
#: stores, sends and reads back every attempt record of every build.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


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

    unit: str
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
        # test on the worker's hot path; both classes hold plain JSON values only. Fields at
        # their defaults are left out (`from_json` restores them): a third less to store.
        values = _changed(vars(self), _ATTEMPT_DEFAULTS)
        values["cases"] = [_changed(vars(case), _CASE_DEFAULTS) for case in self.cases]
        return _ENCODER.encode(values)

    @classmethod
    def from_json(cls, text: str) -> AttemptRecord:
        fields = json.loads(text)
        fields["cases"] = [CaseRecord(**case) for case in fields.get("cases", [])]
        return cls(**fields)


def _history(
    by_lease: dict[str, AttemptRecord], results: dict[str, str], dispositions: dict[str, str]
) -> dict[str, list[Attempt]]:
    """Each unit's attempts, oldest first, with their dispositions: a final attempt has none
    stored, its unit's result names it."""
    history: dict[str, list[Attempt]] = {}
    for lease in sorted(by_lease, key=int):
        record = by_lease[lease]
        final = results.get(record.unit) == lease
        history.setdefault(record.unit, []).append(
            Attempt(record, "final" if final else dispositions.get(lease, "stale"))
        )
    return history


def _defaults(cls: type) -> dict[str, Any]:
    """The default of each field of dataclass `cls` that has one."""
    found: dict[str, Any] = {}
    for one in fields(cls):
        if one.default is not MISSING:
            found[one.name] = one.default
        elif one.default_factory is not MISSING:
            found[one.name] = one.default_factory()
    return found


_ATTEMPT_DEFAULTS, _CASE_DEFAULTS = _defaults(AttemptRecord), _defaults(CaseRecord)


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`values` less those equal to their field's default."""
    return {k: v for k, v in values.items() if k not in defaults or v != defaults[k]}


@dataclass
class Attempt:
    """An attempt as the build record holds it, with what the queue made of it."""

    record: AttemptRecord
    disposition: str  # final | stale | requeued


@dataclass
class BuildRecord:
    """What Redis holds of one build attempt, read in a handful of commands.

    `lost()` says whether it is whole: a record read after keys were evicted or expired must
    never pass for a smaller build.
    """

    populated: bool
    units: list[str]
    results: dict[str, AttemptRecord]
    attempts: dict[str, list[Attempt]]
    takeovers: dict[str, int]
    strays: dict[str, list[str]] = field(default_factory=dict)
    total: int | None = None  # None: the total key is gone
    basis: int | None = None  # the attempt a retry queued from, 0: whole suite; None: gone
    # What `lost()` checks beyond the tests: structural keys, and the results' attempts.
    present: frozenset[str] = frozenset()
    result_leases: dict[str, str] = field(default_factory=dict)

    @property
    def failed_or_unfinished(self) -> list[str]:
        """Units a retry of this attempt runs again: failed ones and those never finished."""
        return [
            unit for unit in self.units if unit not in self.results or self.results[unit].failed
        ]

    @property
    def missing(self) -> list[str]:
        """Populated units with no final result, in queue order."""
        return [unit for unit in self.units if unit not in self.results]

    def lost(self) -> str | None:
        """Why this attempt's state is not whole (a structural key gone, counts that disagree),
        or None when it is: tests listed = total, every result a listed test with its attempt."""
        if not self.populated:
            return "its ready marker is gone"
        gone = [name for name in STRUCTURAL_KEYS if name not in self.present]
        if self.total is None or self.basis is None or gone:
            return f"its {', '.join(gone or ['total'])} key is gone"
        if len(self.units) != self.total:
            return f"its tests list holds {len(self.units)} of {self.total} tests"
        listed = set(self.units)
        for unit, lease in self.result_leases.items():
            if unit not in listed:
                return f"a result names a test its tests list lacks ({len(listed)} listed)"
            if unit not in self.results:
                return f"the attempt that finalized a test is gone (lease {lease})"
        return None

    @classmethod
    def load_attempts(cls, client: redis.Redis, keys: BuildKeys) -> list[BuildRecord]:
        """The records a summary of `keys.attempt` merges, oldest first: the attempt and those
        its retries were based on. Raises `QueueStateLost` when one is not whole."""
        from .retry import load_history  # retry builds on this module

        return load_history(client, keys).records

    @classmethod
    def load(cls, client: redis.Redis, keys: BuildKeys) -> BuildRecord:
        # Not a transaction (refused when Redis is out of memory): read in this order, a result
        # is read before the attempt and disposition its script wrote with it, so a result
        # finalized meanwhile never looks like one whose attempt is gone.
        pipe = client.pipeline(transaction=False)
        pipe.exists(keys.key("ready"))
        pipe.lrange(keys.key("tests"), 0, -1)
        pipe.hgetall(keys.key("results"))
        pipe.hgetall(keys.key("attempts"))
        pipe.hgetall(keys.key("dispositions"))
        pipe.hgetall(keys.key("takeovers"))
        pipe.hgetall(keys.key("strays"))
        pipe.get(keys.key("total"))
        pipe.get(keys.key("basis"))
        for name in STRUCTURAL_KEYS:
            pipe.exists(keys.key(name))
        populated, tests, results, attempts, dispositions, takeovers, strays, total, basis, *ex = (
            pipe.execute()
        )
        present = frozenset(name for name, there in zip(STRUCTURAL_KEYS, ex, strict=True) if there)
        by_lease = {lease: AttemptRecord.from_json(text) for lease, text in attempts.items()}
        return cls(
            populated=bool(populated),
            units=tests,
            results={unit: by_lease[lease] for unit, lease in results.items() if lease in by_lease},
            attempts=_history(by_lease, results, dispositions),
            takeovers={test: int(count) for test, count in takeovers.items()},
            strays={worker: json.loads(text) for worker, text in strays.items()},
            total=int(total) if total is not None else None,
            basis=int(basis) if basis is not None else None,
            present=present,
            result_leases=results,
        )

    @staticmethod
    def add_strays(client: redis.Redis, keys: BuildKeys, worker: str, tests: list[str]) -> None:
        """Record tests `worker` collected that the queue does not hold, so none is lost
        without a word: the summary reports them as not run."""
        pipe = client.pipeline(transaction=False)
        pipe.hset(keys.key("strays"), worker, json.dumps(tests))
        pipe.expire(keys.key("strays"), defaults.KEY_TTL)
        pipe.execute()
