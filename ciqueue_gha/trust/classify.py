"""How each failure of a build stands: new, known flaky (with its rate), failing before too,
quarantined, or under an expired quarantine entry. Only a quarantined failure is excused:
every other fails the build."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .history import TestOutcomes
from .quarantine import Entry, Quarantine

NEW = "new"
KNOWN_FLAKY = "known flaky"
FAILING = "failing"  # failed in every recent build: broken, not flaky
QUARANTINED = "quarantined"
EXPIRED = "quarantine expired"
NEW_FLAKY = "new flaky"  # a test the history never saw, failing one of its repeats


@dataclass(frozen=True)
class Standing:
    """One failing test's standing: its kind, what the history knows of it, its entry."""

    kind: str
    outcomes: TestOutcomes | None = None
    entry: Entry | None = None
    runs: tuple[int, int] = (0, 0)  # a repeated new test's (failed runs, runs)

    def describe(self) -> str:
        """The standing in a few words, e.g. "known flaky: failed in 2 of 4 recent builds
        (50%)"; the reports show it beside the failure."""
        if self.kind in (QUARANTINED, EXPIRED) and self.entry is not None:
            return f"{self.kind}{_entry_words(self.entry)}"
        if self.kind == KNOWN_FLAKY and self.outcomes is not None:
            return f"{KNOWN_FLAKY}: {self.outcomes.describe()}"
        if self.kind == FAILING and self.outcomes is not None:
            return f"still failing: failed in each of its {self.outcomes.builds} recent builds"
        if self.kind == NEW_FLAKY:
            failed, runs = self.runs
            return f"new flaky: a new test that failed {failed} of its {runs} runs"
        seen = "never failed in its recent builds" if self.outcomes else "not seen before"
        return f"new failure: {seen}"


def _entry_words(entry: Entry) -> str:
    until = f" (until {entry.until.isoformat()})" if entry.until else ""
    reason = f": {entry.reason}" if entry.reason else ""
    return f"{until}{reason}"


@dataclass(frozen=True)
class Trust:
    """The standing of each failing test of a build, and the quarantine entries found
    expired. Empty (the default) when nothing was classified."""

    standings: Mapping[str, Standing] = field(default_factory=dict)
    expired: tuple[Entry, ...] = ()

    def standing(self, test: str) -> Standing | None:
        return self.standings.get(test)

    def excused(self, test: str) -> bool:
        """Whether `test`'s failure does not fail the build (it is quarantined)."""
        standing = self.standings.get(test)
        return standing is not None and standing.kind == QUARANTINED


def classify(
    failing: Iterable[str],
    quarantine: Quarantine,
    history: Mapping[str, TestOutcomes],
    repeated: Mapping[str, tuple[int, int]] | None = None,
) -> Trust:
    """The standing of each of the `failing` tests against the quarantine and the history
    (read before this build's outcomes were added to it); `repeated` holds the (failed runs,
    runs) of the tests run several times (--repeat-new)."""
    repeated = repeated or {}
    standings = {test: _standing(test, quarantine, history, repeated) for test in failing}
    return Trust(standings, tuple(quarantine.expired))


def _standing(
    test: str,
    quarantine: Quarantine,
    history: Mapping[str, TestOutcomes],
    repeated: Mapping[str, tuple[int, int]],
) -> Standing:
    entry = quarantine.holding(test)
    if entry is not None:
        return Standing(QUARANTINED, history.get(test), entry)
    entry = quarantine.expired_for(test)
    if entry is not None:
        return Standing(EXPIRED, history.get(test), entry)
    failed, runs = repeated.get(test, (0, 0))
    if 0 < failed < runs:
        return Standing(NEW_FLAKY, runs=(failed, runs))
    outcomes = history.get(test)
    if outcomes is None or outcomes.failing == 0:
        return Standing(NEW, outcomes)
    return Standing(KNOWN_FLAKY if outcomes.flaky else FAILING, outcomes)
