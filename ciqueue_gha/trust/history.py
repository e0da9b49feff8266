"""Each test's recent outcomes across the builds of a repository, kept in Redis: the memory
that tells a known flaky test from a new failure.

One hash per repository (the namespace durations use): test id -> its entries, oldest
first, ``<build> <unix time> <p|f|k>`` (passed, failed, flaky) joined by ``;`` (build ids
hold neither), one per build (a re-run of the build replaces its entry), at most
`HISTORY_CAP` and none older than `HISTORY_DAYS` days. Plain text, not JSON: the summary
of a 100,000-test build rewrites 100,000 of them. It writes them at the end of a build;
they are forgotten 30 days after the last.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import redis

from ..cluster import keyed
from ..protocol.keys import outcomes_key

#: An outcome as the history keeps it: passed, failed, or flaky (failed, then passed on a
#: requeue or a retry of the same build).
PASSED, FAILED, FLAKY = "passed", "failed", "flaky"
OUTCOMES = (PASSED, FAILED, FLAKY)

#: Days an outcome is remembered, as the durations are.
HISTORY_DAYS = 30
HISTORY_TTL = HISTORY_DAYS * 24 * 3600
#: Builds remembered per test, the newest kept.
HISTORY_CAP = 50
#: Tests read or written per Redis command.
CHUNK = 1000

Entry = tuple[str, int, str]  # (build, unix time, outcome)
T = TypeVar("T")


@dataclass(frozen=True)
class TestOutcomes:
    """One test's recent builds, oldest first."""

    __test__ = False  # not a pytest test class, whatever its name says

    test: str
    entries: tuple[Entry, ...]

    def count(self, outcome: str) -> int:
        return sum(1 for _, _, kept in self.entries if kept == outcome)

    @property
    def builds(self) -> int:
        return len(self.entries)

    @property
    def failing(self) -> int:
        """Builds in which the test failed at least once (failed, or flaky)."""
        return self.count(FAILED) + self.count(FLAKY)

    @property
    def rate(self) -> float:
        return self.failing / self.builds if self.entries else 0.0

    @property
    def flaky(self) -> bool:
        """It failed in some builds and passed in some (a flaky build is both)."""
        return self.failing > 0 and self.count(PASSED) + self.count(FLAKY) > 0

    def describe(self) -> str:
        """E.g. "failed in 2 of 4 recent builds (50%)"."""
        return f"failed in {self.failing} of {self.builds} recent builds ({self.rate:.0%})"

    def as_json(self) -> dict[str, object]:
        counts = {outcome: self.count(outcome) for outcome in OUTCOMES}
        return {"test": self.test, "rate": round(self.rate, 4), "builds": self.builds, **counts}


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


_CODES = {PASSED: "p", FAILED: "f", FLAKY: "k"}
_OUTCOME_OF = {code: outcome for outcome, code in _CODES.items()}


def _decode(text: str | None, since: int) -> tuple[Entry, ...]:
    entries = []
    for entry in text.split(";") if text else ():
        build, at, code = entry.split(" ")
        if int(at) >= since:
            entries.append((build, int(at), _OUTCOME_OF[code]))
    return tuple(entries)


def _kept(entry: str, build: str, since: int) -> bool:
    """Whether a stored entry stays beside `build`'s new one: another build's, recent."""
    other, at, _ = entry.split(" ")
    return other != build and int(at) >= since


def _merged(text: str | None, build: str, now: int, outcome: str) -> str:
    """Stored entries `text` with `build`'s outcome in place of its own, the newest
    `HISTORY_CAP` of those younger than `HISTORY_DAYS`."""
    since = now - HISTORY_TTL
    kept = [entry for entry in text.split(";") if _kept(entry, build, since)] if text else []
    kept.append(f"{build} {now} {_CODES[outcome]}")
    return ";".join(kept[-HISTORY_CAP:])


def _now(client: redis.Redis) -> int:
    seconds, _ = client.time()
    return int(seconds)


def load(
    client: redis.Redis, namespace: str, tests: Sequence[str] | None = None, *, but: str = ""
) -> dict[str, TestOutcomes]:
    """The recent outcomes of `tests` (every test kept, when None), but those of build `but`
    (a re-run's earlier attempt is not "before" it); a test never seen in the last
    `HISTORY_DAYS` days is absent."""
    key, since = outcomes_key(namespace), _now(client) - HISTORY_TTL
    client = keyed(client, key)  # a slot of its own on a cluster
    pairs: list[tuple[str, str | None]] = []
    if tests is None:
        raw: Mapping[str, str] = client.hgetall(key)  # type: ignore[assignment]
        pairs.extend(raw.items())
    else:
        for chunk in _chunks(list(tests)):
            values: list[str | None] = client.hmget(key, list(chunk))  # type: ignore[assignment]
            pairs.extend(zip(chunk, values, strict=True))
    found = {
        test: TestOutcomes(test, tuple(e for e in _decode(text, since) if e[0] != but))
        for test, text in pairs
    }
    return {test: kept for test, kept in found.items() if kept.entries}


def record(client: redis.Redis, namespace: str, build: str, outcomes: Mapping[str, str]) -> None:
    """Add this build's outcome of each test (test -> one of `OUTCOMES`); a build recorded
    again (a re-run) replaces its own entry."""
    if not outcomes:
        return
    key, tests = outcomes_key(namespace), list(outcomes)
    client = keyed(client, key)
    reads = client.pipeline(transaction=False)
    reads.time()  # Redis's clock, in the same round trip as the reads
    for chunk in _chunks(tests):
        reads.hmget(key, list(chunk))
    (seconds, _), *read = reads.execute()
    now, stored = int(seconds), [text for values in read for text in values]
    writes = client.pipeline(transaction=False)
    for pairs in _chunks(list(zip(tests, stored, strict=True))):
        merged = {test: _merged(text, build, now, outcomes[test]) for test, text in pairs}
        writes.hset(key, mapping=merged)  # type: ignore[arg-type]
    writes.expire(key, HISTORY_TTL)
    writes.execute()


def flakiest(history: Mapping[str, TestOutcomes], limit: int) -> list[TestOutcomes]:
    """The `limit` flakiest tests: highest rate first, then the most builds, then by id."""
    flaky = [kept for kept in history.values() if kept.flaky]
    return sorted(flaky, key=lambda k: (-k.rate, -k.builds, k.test))[:limit]
